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
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder([.. args ?? []]);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://{options.Host}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 8L << 20);
        ApiKeyStore? keys = null;
        if (host is not null)
        {
            keys = options.ApiKeys is { } path ? ApiKeyStore.Load(path, host) : null;
            builder.Services.AddSingleton(host); // the caller's: not disposed with the server
        }
        else
        {
            // The keys file is checked against the folder's expert names before any weight loads: a bad grant is
            // refused at once, not after minutes of loading.
#pragma warning disable CA2000 // handed to the container below, which disposes it when the server stops
            var loaded = ModelHost.Load(options, (config, names) => keys = options.ApiKeys is { } path ? ApiKeyStore.Load(path, config.IsMoe ? config.NumExperts : 0, names) : null);
#pragma warning restore CA2000
            builder.Services.AddSingleton(_ => loaded); // made by a factory, so the container disposes it when the server stops
        }

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<RevocationState>();
        builder.Services.AddSingleton<ServerMetrics>();
        builder.Services.AddSingleton<GenerationEngine>();
        builder.Services.AddHostedService<RevocationWatcher>();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.Use(CountAndGuardAsync);
        app.MapPost("/v1/completions", (HttpContext c, ModelHost h, GenerationEngine e) => CompletionEndpoints.Completions(c, h, e, options, keys));
        app.MapPost("/v1/chat/completions", (HttpContext c, ModelHost h, GenerationEngine e) => CompletionEndpoints.Chat(c, h, e, options, keys));
        app.MapGet("/v1/models", InfoEndpoints.Models);
        app.MapGet("/health", InfoEndpoints.Health);
        app.MapGet("/ready", InfoEndpoints.Ready);
        app.MapGet("/metrics", InfoEndpoints.Metrics);
        return app;
    }

    /// <summary>
    /// Every response is counted under the status it really got (499 when the client left first), and whatever escapes
    /// an endpoint becomes a 500 with a JSON body and an error id, never an empty body or a stack trace.
    /// </summary>
    private static async Task CountAndGuardAsync(HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !context.RequestAborted.IsCancellationRequested)
        {
            var id = Guid.NewGuid().ToString("N")[..12];
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("FlexOlmo.Serving").LogError(e, "unhandled error {ErrorId} on {Path}", id, context.Request.Path);
            await CompletionEndpoints.WriteErrorAsync(context, new ApiException(500, $"Internal error (id {id}); the server log has the details.", null, "internal_error")).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
        finally
        {
            var status = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode;
            context.RequestServices.GetRequiredService<ServerMetrics>().Request(EndpointLabel(context.Request.Path), status);
        }
    }

    private static string EndpointLabel(PathString path) => path.Value switch
    {
        "/v1/completions" => "completions",
        "/v1/chat/completions" => "chat/completions",
        "/v1/models" => "models",
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        _ => "other",
    };
}
