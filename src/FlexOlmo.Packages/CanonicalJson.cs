using System.Text.Json;
using System.Text.Json.Nodes;

namespace FlexOlmo.Packages;

/// <summary>
/// The bytes a signature covers: the document without its "signature" field, object keys sorted by ordinal,
/// no whitespace, numbers and strings as System.Text.Json writes them. Re-reading and re-canonicalising a file
/// gives the same bytes, so a signature survives pretty-printing but not any change of content.
/// </summary>
internal static class CanonicalJson
{
    public static byte[] Bytes(JsonNode document)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, document, top: true);
        }

        return buffer.ToArray();
    }

    private static void Write(Utf8JsonWriter writer, JsonNode? node, bool top)
    {
        switch (node)
        {
            case null:
                writer.WriteNullValue();
                break;
            case JsonObject obj:
                writer.WriteStartObject();
                foreach (var (key, value) in obj.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    if (top && key == "signature")
                    {
                        continue;
                    }

                    writer.WritePropertyName(key);
                    Write(writer, value, top: false);
                }

                writer.WriteEndObject();
                break;
            case JsonArray array:
                writer.WriteStartArray();
                foreach (var item in array)
                {
                    Write(writer, item, top: false);
                }

                writer.WriteEndArray();
                break;
            default:
                node.WriteTo(writer);
                break;
        }
    }
}
