using System.Text.Json.Nodes;

namespace FlexOlmo.Serving;

/// <summary>A request the server refuses: an HTTP status and an OpenAI-style error body naming the problem.</summary>
internal sealed class ApiException(int status, string message, string? param = null, string code = "invalid_request") : Exception(message)
{
    public int Status { get; } = status;

    public string? Param { get; } = param;

    public string Code { get; } = code;

    /// <summary>Seconds a client should wait before retrying (sent as Retry-After), or null.</summary>
    public int? RetryAfterSeconds { get; init; }

    public JsonObject Body() => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = Message,
            ["type"] = Status switch { 401 => "authentication_error", 403 => "permission_error", 429 => "rate_limit_error", >= 500 => "server_error", _ => "invalid_request_error" },
            ["param"] = Param,
            ["code"] = Code,
        },
    };
}
