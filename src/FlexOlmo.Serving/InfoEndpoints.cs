using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace FlexOlmo.Serving;

/// <summary>GET /v1/models, /health and /metrics.</summary>
public static class InfoEndpoints
{
    /// <summary>The composition: the model and its experts with owners, licences and whether they are revoked.</summary>
    public static IResult Models(ModelHost host, RevocationState revocations, ServerMetrics metrics)
    {
        metrics.Request("models", 200);
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
            }).ToArray()),
            ["revocations_checked"] = revocations.LastChecked?.ToString("O"),
        };
        return Results.Json(new JsonObject { ["object"] = "list", ["data"] = new JsonArray(model) });
    }

    public static IResult Health(ModelHost host, ServerMetrics metrics) =>
        Results.Json(new JsonObject { ["status"] = "ok", ["model"] = host.Name, ["active"] = metrics.Active, ["queued"] = metrics.Queued });

    public static IResult Metrics(ServerMetrics metrics) => Results.Text(metrics.Render(), "text/plain; version=0.0.4");
}
