using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace FlexOlmo.Composition;

/// <summary>
/// A YAML file as JSON (so the JSON schema validates it) plus the line of every node, keyed by JSON pointer, so errors
/// can name the line. Plain scalars that look like numbers, booleans or null become those; quoted scalars stay strings.
/// </summary>
internal sealed class YamlDocument
{
    private const long MaxBytes = 1 << 20;
    private readonly Dictionary<string, int> _lines = new(StringComparer.Ordinal);

    private YamlDocument(string path) => Path = path;

    public string Path { get; }

    public JsonNode? Root { get; private set; }

    public static YamlDocument Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new RecipeException($"{path}: no such recipe file.");
        }

        if (info.Length > MaxBytes)
        {
            throw new RecipeException($"{path}: larger than {MaxBytes >> 10} KiB; not a recipe.");
        }

        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new RecipeException($"{path}:{e.Start.Line}: not valid YAML ({FirstLine(e.InnerException?.Message ?? e.Message)}).");
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or OverflowException)
        {
            // YamlDotNet reports some malformed documents (duplicate keys in flow mappings, for one) this way.
            throw new RecipeException($"{path}: not valid YAML ({FirstLine(e.Message)}).");
        }

        if (stream.Documents.Count != 1)
        {
            throw new RecipeException($"{path}: must hold exactly one YAML document (found {stream.Documents.Count}).");
        }

        var document = new YamlDocument(path);
        document.Root = document.Convert(stream.Documents[0].RootNode, string.Empty, 0);
        return document;
    }

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    /// <summary>The line of the node at a JSON pointer (or of its nearest ancestor).</summary>
    public int LineOf(string pointer)
    {
        var current = pointer;
        while (true)
        {
            if (_lines.TryGetValue(current, out var line))
            {
                return line;
            }

            if (current.Length == 0)
            {
                return 1;
            }

            current = current[..current.LastIndexOf('/')];
        }
    }

    /// <summary>"FILE:LINE: field: problem".</summary>
    public RecipeException Error(string pointer, string problem)
    {
        var field = pointer.Trim('/').Replace('/', '.');
        return new RecipeException($"{Path}:{LineOf(pointer)}: {(field.Length == 0 ? string.Empty : field + ": ")}{problem}");
    }

    private JsonNode? Convert(YamlNode node, string pointer, int depth)
    {
        if (depth > 32)
        {
            throw new RecipeException($"{Path}:{node.Start.Line}: nested too deeply.");
        }

        _lines[pointer] = (int)node.Start.Line;
        if (!node.Anchor.IsEmpty)
        {
            // An anchor lets one node be referred to many times: a small file could expand without bound ("billion laughs").
            throw new RecipeException($"{Path}:{node.Start.Line}: anchors and aliases (&{node.Anchor.Value}, *{node.Anchor.Value}) are not allowed in a recipe; write the value out.");
        }

        switch (node)
        {
            case YamlMappingNode mapping:
                var obj = new JsonObject();
                foreach (var (key, value) in mapping.Children)
                {
                    var name = (key as YamlScalarNode)?.Value ?? throw new RecipeException($"{Path}:{key.Start.Line}: keys must be plain names.");
                    if (obj.ContainsKey(name))
                    {
                        throw new RecipeException($"{Path}:{key.Start.Line}: '{name}' appears twice.");
                    }

                    _lines[$"{pointer}/{name}"] = (int)key.Start.Line;
                    obj[name] = Convert(value, $"{pointer}/{name}", depth + 1);
                }

                return obj;
            case YamlSequenceNode sequence:
                var array = new JsonArray();
                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    array.Add(Convert(sequence.Children[i], $"{pointer}/{i}", depth + 1));
                }

                return array;
            case YamlScalarNode scalar:
                var text = scalar.Value ?? string.Empty;
                if (scalar.Style is not ScalarStyle.Plain)
                {
                    return JsonValue.Create(text);
                }

                return text switch
                {
                    "" or "~" or "null" => null,
                    "true" => JsonValue.Create(true),
                    "false" => JsonValue.Create(false),
                    _ when long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer) => JsonValue.Create(integer),
                    _ when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && text.Any(char.IsDigit) && !text.Contains(':', StringComparison.Ordinal) => JsonValue.Create(number),
                    _ => JsonValue.Create(text),
                };
            default:
                throw new RecipeException($"{Path}:{node.Start.Line}: unsupported YAML node (aliases and tags are not allowed).");
        }
    }
}
