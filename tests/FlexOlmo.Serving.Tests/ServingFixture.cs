using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FlexOlmo.Composition;
using FlexOlmo.Registry;
using FlexOlmo.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;

namespace FlexOlmo.Serving.Tests;

/// <summary>
/// Models to serve: the transformers golden fixtures (token-id prompts) and a model composed from two experts trained
/// in the test, published to a local registry, with a tokenizer and a chat template.
/// </summary>
public sealed class ServingFixture : IDisposable
{
    public const string ChatTemplate = "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

    public ServingFixture()
    {
        Training = new TrainingFixture();
        RegistryFolder = Path.Combine(Training.Root.Path, "registry");
        var registry = new ExpertRegistry(new LocalStore(RegistryFolder));
        foreach (var (name, data) in new[] { ("counting", Training.CountingData), ("chemistry", Training.ChemistryData) })
        {
            var expert = Training.TrainExpert(name, data, steps: 25);
            registry.PublishExpertAsync(expert.Folder, null, null, CancellationToken.None).GetAwaiter().GetResult();
        }

        var recipe = Path.Combine(Training.Root.Path, "serve-recipe.yaml");
        File.WriteAllText(recipe, $"name: served\nregistry: {RegistryFolder}\nanchor: {{ source: {Training.AnchorFolder} }}\nexperts:\n  - source: counting@1.0.0\n  - source: chemistry@1.0.0\nexperts_per_token: 2\n");
        ComposedFolder = Path.Combine(Training.Root.Path, "served");
        Composer.ComposeAsync(Recipe.Load(recipe), ComposedFolder, null, null, CancellationToken.None).GetAwaiter().GetResult();
        File.WriteAllText(Path.Combine(ComposedFolder, "tokenizer_config.json"), new JsonObject { ["chat_template"] = ChatTemplate }.ToJsonString());
        Composed = ModelHost.Load(new ServerOptions { Model = ComposedFolder, DType = "float32" });
        Golden = new[] { "olmo2-tiny", "flexolmo-tiny", "flexolmo-tiny-optout" }
            .ToDictionary(f => f, f => ModelHost.Load(new ServerOptions { Model = TestPaths.Fixture(f), DType = "float32" }));
    }

    public TrainingFixture Training { get; }

    public string RegistryFolder { get; }

    public string ComposedFolder { get; }

    public ModelHost Composed { get; }

    public IReadOnlyDictionary<string, ModelHost> Golden { get; }

    /// <summary>An in-process server (ASP.NET Core test host) around a loaded model.</summary>
    public static WebApplication InProcess(ModelHost host, ServerOptions? options = null)
    {
        var app = FlexOlmoServer.Build(options ?? new ServerOptions { Model = host.Folder }, host, builder => builder.WebHost.UseTestServer());
        app.StartAsync().GetAwaiter().GetResult();
        return app;
    }

    /// <summary>A real Kestrel server on 127.0.0.1 with a free port; returns it and its base address.</summary>
    public static (WebApplication App, Uri BaseAddress) OnSocket(ModelHost host, ServerOptions? options = null)
    {
        var app = FlexOlmoServer.Build((options ?? new ServerOptions { Model = host.Folder }) with { Host = "127.0.0.1", Port = 0 }, host);
        app.StartAsync().GetAwaiter().GetResult();
        return (app, new Uri(app.Urls.First()));
    }

    public static async Task<(int Status, JsonObject Body)> PostAsync(HttpClient client, string path, JsonObject body)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonNode.Parse(text)!.AsObject());
    }

    public void Dispose()
    {
        Composed.Dispose();
        foreach (var host in Golden.Values)
        {
            host.Dispose();
        }

        Training.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class ServingCollection : ICollectionFixture<ServingFixture>
{
    public const string Name = "serving";
}
