using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FlexOlmo.Serving;

/// <summary>Builds the ASP.NET Core application that serves a model (used by <c>flexolmo serve</c> and the tests).</summary>
public static class FlexOlmoServer
{
    /// <param name="host">An already loaded model (tests share one); null to load <see cref="ServerOptions.Model"/>.</param>
    /// <param name="configure">Last-minute changes to the builder (tests swap Kestrel for the in-memory test server).</param>
    public static WebApplication Build(ServerOptions options, ModelHost? host = null, Action<WebApplicationBuilder>? configure = null, IReadOnlyList<string>? args = null)
    {
        var builder = WebApplication.CreateSlimBuilder([.. args ?? []]);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://{options.Host}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 8L << 20);
        var model = host ?? ModelHost.Load(options);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(model);
        builder.Services.AddSingleton<RevocationState>();
        builder.Services.AddSingleton<ServerMetrics>();
        builder.Services.AddSingleton<GenerationEngine>();
        var keys = options.ApiKeys is { } path ? ApiKeyStore.Load(path, model) : null;
        builder.Services.AddHostedService<RevocationWatcher>();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapPost("/v1/completions", (HttpContext c, ModelHost h, GenerationEngine e, ServerMetrics m) => CompletionEndpoints.Completions(c, h, e, m, options, keys));
        app.MapPost("/v1/chat/completions", (HttpContext c, ModelHost h, GenerationEngine e, ServerMetrics m) => CompletionEndpoints.Chat(c, h, e, m, options, keys));
        app.MapGet("/v1/models", InfoEndpoints.Models);
        app.MapGet("/health", InfoEndpoints.Health);
        app.MapGet("/metrics", InfoEndpoints.Metrics);
        return app;
    }
}
