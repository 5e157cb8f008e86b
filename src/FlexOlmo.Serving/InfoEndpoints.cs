using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace FlexOlmo.Serving;

/// <summary>GET /v1/models, /health and /metrics.</summary>
internal static class InfoEndpoints
{
    /// <summary>The composition: the model and its experts with owners, licences and whether they are revoked.</summary>
    public static IResult Models(ModelHost host, RevocationState revocations)
    {
        var config = host.Model.Config;
        var model = new JsonObject
        {
            ["id"] = host.Name,
            ["object"] = "model",
            ["created"] = (host.Sidecar?.Created ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds(),
            ["owned_by"] = "flexolmo",
            ["model_type"] = config.ModelType,
            ["experts_per_token"] = config.IsMoe ? config.NumExpertsPerTok : null,
            ["anchor"] = host.Sidecar is { } s ? new JsonObject { ["name"] = s.AnchorName, ["fingerprint"] = s.AnchorFingerprint } : null,
            ["experts"] = new JsonArray(host.Experts.Select(e => (JsonNode)new JsonObject
            {
                ["index"] = e.Index,
                ["name"] = e.Name,
                ["version"] = e.Version,
                ["owner"] = e.Owner,
                ["license"] = e.License,
                ["revoked"] = revocations.IsRevoked(e.Index),
                ["suspended"] = revocations.Suspended && revocations.Tracked.Contains(e.Index),
            }).ToArray()),
            ["revocations_checked"] = revocations.LastSuccess?.ToString("O"),
        };
        return Results.Json(new JsonObject { ["object"] = "list", ["data"] = new JsonArray(model) });
    }

    /// <summary>
    /// Liveness and what a load balancer should know: "ok", or "degraded" when revocations could not be checked lately
    /// (published experts may be suspended) or the last check failed. Always 200 while the process runs.
    /// </summary>
    public static IResult Health(ModelHost host, ServerMetrics metrics, RevocationState revocations, GenerationEngine engine)
    {
        var degraded = !engine.IsRunning || revocations.Suspended || revocations.LastError is not null;
        return Results.Json(new JsonObject
        {
            ["status"] = degraded ? "degraded" : "ok",
            ["model"] = host.Name,
            ["engine"] = engine.IsRunning ? "running" : "stopped",
            ["active"] = metrics.Active,
            ["queued"] = metrics.Queued,
            ["revocations"] = Revocations(host, revocations),
        });
    }

    /// <summary>
    /// Readiness: 200 once the engine runs and (when a registry is set) a revocation check has succeeded, so a new
    /// replica takes traffic only when it knows which experts it may use; 503 otherwise.
    /// </summary>
    public static IResult Ready(ServerMetrics metrics, RevocationState revocations, GenerationEngine engine)
    {
        var ready = engine.IsRunning && (!revocations.Checking || revocations.LastSuccess is not null);
        return Results.Json(
            new JsonObject { ["ready"] = ready, ["reason"] = ready ? null : engine.IsRunning ? "no revocation check has succeeded yet" : "the engine is not running" },
            statusCode: ready ? 200 : 503);
    }

    public static IResult Metrics(ServerMetrics metrics, RevocationState revocations) => Results.Text(metrics.Render(revocations), "text/plain; version=0.0.4");

    private static JsonObject Revocations(ModelHost host, RevocationState state) => new()
    {
        ["checked"] = state.Checking,
        ["last_success"] = state.LastSuccess?.ToString("O"),
        ["last_attempt"] = state.LastAttempt?.ToString("O"),
        ["last_error"] = state.LastError,
        ["suspended"] = state.Suspended,
        ["revoked"] = new JsonArray(state.Findings.OrderBy(f => f.Key).Select(f => (JsonNode)new JsonObject
        {
            ["index"] = f.Key,
            ["name"] = host.Experts[f.Key].Name,
            ["basis"] = f.Value.Basis.ToString(),
            ["reason"] = f.Value.Reason,
        }).ToArray()),
    };
}
