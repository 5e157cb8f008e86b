using System.Text.Json.Nodes;
using FlexOlmo.Formats;
using FlexOlmo.Registry;
using Microsoft.AspNetCore.TestHost;

namespace FlexOlmo.Serving.Tests;

/// <summary>
/// Consent never fails open in the server: API keys grant only what they list, a revocation once seen stays for the
/// server's lifetime, and a registry that cannot be read is reported and, past the grace period, suspends every
/// published expert. Each test serves the composed model against its own copy of the registry (without revocations)
/// and its own memory of seen revocations.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class ConsentTests(ServingFixture fixture)
{
    [Theory]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678"}]}""", "has no \"experts\"")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": null}]}""", "is null")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": "counting"}]}""", "only \"*\" may be a string")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": ""}]}""", "only \"*\" may be a string")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": []}]}""", "is empty")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": {}}]}""", "is object")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": true}]}""", "is true")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": [1.5]}]}""", "experts[0]")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "experts": ["nobody"]}]}""", "nobody")]
    [InlineData("""{"keys": [{"name": "app", "key": "sk-12345678", "expert": ["counting"]}]}""", "unknown field 'expert'")]
    [InlineData("""{"keys": [5]}""", "must be an object")]
    public void ApiKeys_AnythingButAnExplicitGrant_IsAnErrorWhenTheFileLoads_NamingTheEntry(string file, string problem)
    {
        using var temp = new TempDirectory("keys-hostile");
        var path = temp.File("keys.json");
        File.WriteAllText(path, file);

        var error = Assert.ThrowsAny<FlexOlmoException>(() => ApiKeyStore.Load(path, fixture.Composed));

        Assert.Contains("keys[0]", error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ApiKeys_GrantingAnUnknownExpert_AreRefusedBeforeAnyWeightLoads()
    {
        // The composed folder without its weights: the server must refuse the keys file from the config and sidecar
        // alone, not report the missing weights after trying to load them (minutes, for a real model).
        using var temp = new TempDirectory("keys-before-weights");
        var folder = temp.Sub("model");
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(fixture.ComposedFolder).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal) && !f.EndsWith(".safetensors.index.json", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        var keys = temp.File("keys.json");
        File.WriteAllText(keys, """{"keys": [{"name": "app", "key": "sk-12345678", "experts": ["public", "nobody"]}]}""");

        var error = Assert.ThrowsAny<FlexOlmoException>(() => FlexOlmoServer.Build(new ServerOptions { Model = folder, DType = "float32", ApiKeys = keys }));

        Assert.Contains("keys.json: keys[0] ('app').experts[1]", error.Message, StringComparison.Ordinal);
        Assert.Contains("nobody", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApiKeys_ExcludingAnExpertTheKeyMayNotUse_IsNotAViolation()
    {
        using var temp = new TempDirectory("keys-exclude");
        var keys = temp.File("keys.json");
        File.WriteAllText(keys, """{"keys": [{"name": "counting-app", "key": "sk-counting-0001", "experts": ["counting"]}]}""");
        await using var app = ServingFixture.InProcess(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, ApiKeys = keys });
        using var client = app.GetTestClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-counting-0001");

        var (excluded, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "one", ["max_tokens"] = 2, ["experts"] = new JsonObject { ["exclude"] = new JsonArray("chemistry") } });
        var (included, _) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "one", ["max_tokens"] = 2, ["experts"] = new JsonObject { ["include"] = new JsonArray("chemistry") } });

        Assert.Equal(200, excluded);
        Assert.Equal(["public", "counting"], body["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Equal(403, included);
    }

    [Fact]
    public async Task ARevocationOnceSeen_StaysForTheServersLifetime_WhenItsRecordIsDeleted()
    {
        using var temp = new TempDirectory("serve-sticky");
        var registry = CopyRegistry(temp);
        await using var app = ServingFixture.InProcess(fixture.Composed, Options(registry, temp, poll: 0.2));
        using var client = app.GetTestClient();
        await new ExpertRegistry(new LocalStore(registry), new RevocationLedger(temp.Sub("owner"))).RevokeAsync("chemistry@1.0.0", "withdrawn", null, CancellationToken.None);
        await WaitUntilAsync(async () => !(await UsedAsync(client)).Contains("chemistry"));

        Directory.Delete(Path.Combine(registry, "revocations"), recursive: true);
        await Task.Delay(1000); // several polls that no longer see the record

        Assert.Equal(["public", "counting"], await UsedAsync(client));
        Assert.Contains("chemistry", (await client.GetStringAsync("/health")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnreadableRegistry_ShowsInHealthAndMetrics_AndSuspendsPublishedExperts_AfterTheGrace()
    {
        using var temp = new TempDirectory("serve-unreachable");
        var registry = CopyRegistry(temp);
        await using var app = ServingFixture.InProcess(fixture.Composed, Options(registry, temp, poll: 0.2) with { RevocationGraceSeconds = 1 });
        using var client = app.GetTestClient();
        Assert.Equal(["public", "counting", "chemistry"], await UsedAsync(client));

        Directory.Delete(registry, recursive: true);
        await WaitUntilAsync(async () => (await UsedAsync(client)).SequenceEqual(["public"]));
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        var metrics = await client.GetStringAsync("/metrics");

        Assert.Equal("degraded", health["status"]!.GetValue<string>());
        Assert.True(health["revocations"]!["suspended"]!.GetValue<bool>());
        Assert.Contains("No registry at", health["revocations"]!["last_error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("flexolmo_experts_suspended 1", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("flexolmo_revocation_checks_total{result=\"error\"} 0", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AServerThatCannotReadItsRegistryAtStart_IsNotReady_AndUsesNoPublishedExpert()
    {
        using var temp = new TempDirectory("serve-no-registry");
        await using var app = ServingFixture.InProcess(fixture.Composed, Options(temp.File("missing-registry"), temp, poll: 0.2));
        using var client = app.GetTestClient();

        using var ready = await client.GetAsync("/ready");
        var used = await UsedAsync(client);

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal(["public"], used);
    }

    private ServerOptions Options(string registry, TempDirectory temp, double poll) =>
        new() { Model = fixture.ComposedFolder, Registry = registry, RevocationPollSeconds = poll, RevocationLedgerFolder = temp.Sub("seen") };

    /// <summary>The fixture's registry without any revocation record (other tests revoke in the shared one).</summary>
    private string CopyRegistry(TempDirectory temp)
    {
        var target = temp.Sub("registry");
        foreach (var file in Directory.GetFiles(fixture.RegistryFolder, "*", SearchOption.AllDirectories).Where(f => !Path.GetRelativePath(fixture.RegistryFolder, f).StartsWith("revocations", StringComparison.Ordinal)))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(fixture.RegistryFolder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }

        return target;
    }

    private static async Task<List<string>> UsedAsync(HttpClient client)
    {
        var (status, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "one two", ["max_tokens"] = 2, ["temperature"] = 0 });
        Assert.Equal(200, status);
        return body["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "waited 15 s");
            await Task.Delay(100);
        }
    }
}
