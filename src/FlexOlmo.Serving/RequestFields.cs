using System.Text.Json;

namespace FlexOlmo.Serving;

/// <summary>
/// Typed reads of a request body's fields. A field of the wrong JSON type or out of range is a 400 that names the field
/// and says what it must be; nothing here lets a type error become a 500. Absent and null fields read as null.
/// </summary>
internal static class RequestFields
{
    public static void RequireObject(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw new ApiException(400, $"The request body must be a JSON object, not {Kind(body)}.", null, "invalid_body");
        }
    }

    public static JsonElement? Get(JsonElement body, string name) =>
        body.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public static long? Integer(JsonElement body, string name, long min, long max)
    {
        if (Get(body, name) is not { } value)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            throw new ApiException(400, $"'{name}' must be an integer, not {Kind(value)}.", name, "invalid_type");
        }

        return number >= min && number <= max ? number : throw new ApiException(400, $"{name} must be between {min} and {max} (got {number}).", name, "invalid_value");
    }

    public static double? Number(JsonElement body, string name, double min, double max, bool minExclusive = false)
    {
        if (Get(body, name) is not { } value)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
        {
            throw new ApiException(400, $"'{name}' must be a finite number, not {Kind(value)}.", name, "invalid_type");
        }

        var above = minExclusive ? number > min : number >= min;
        return above && number <= max
            ? number
            : throw new ApiException(400, $"{name} must be {(minExclusive ? ">" : ">=")} {min} and <= {max} (got {value.GetRawText()}).", name, "invalid_value");
    }

    public static bool? Boolean(JsonElement body, string name) =>
        Get(body, name) is not { } value ? null
        : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
        : throw new ApiException(400, $"'{name}' must be true or false, not {Kind(value)}.", name, "invalid_type");

    public static string? Text(JsonElement body, string name) =>
        Get(body, name) is not { } value ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new ApiException(400, $"'{name}' must be a string, not {Kind(value)}.", name, "invalid_type");

    /// <summary>An integer array element as an int, or a 400 naming <paramref name="where"/>.</summary>
    public static int Int32(JsonElement element, string where, string param) =>
        element.ValueKind == JsonValueKind.Number && element.TryGetInt32(out var value)
            ? value
            : throw new ApiException(400, $"{where} must be an integer, not {Kind(element)}.", param, "invalid_type");

    /// <summary>How a JSON value is described in messages: its type, and for numbers and short strings the value.</summary>
    public static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString() is { Length: <= 40 } s ? $"the string \"{s}\"" : "a string",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}
