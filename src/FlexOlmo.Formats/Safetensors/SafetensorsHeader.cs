using System.Text.Json;

namespace FlexOlmo.Formats.Safetensors;

/// <summary>
/// The parsed, validated JSON header of a safetensors file.
/// </summary>
/// <remarks>
/// Parsed with <see cref="Utf8JsonReader"/> rather than JsonDocument because the format forbids duplicate
/// names, which JsonDocument accepts silently. Every rule of the reference implementation is checked before
/// any tensor is touched: known dtype, shape x dtype size == byte length, offsets inside the data area, no
/// overlaps and no gaps.
/// </remarks>
public sealed class SafetensorsHeader
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const int MaxRank = 16;

    private SafetensorsHeader(IReadOnlyList<SafetensorsTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
        ByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>Tensors in file order (ascending offsets).</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    public IReadOnlyDictionary<string, SafetensorsTensorInfo> ByName { get; }

    /// <summary>The <c>__metadata__</c> entries (string to string).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Parses and validates a header against the size of the data area that follows it.</summary>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> json, long dataLength, string file)
    {
        var tensors = new List<SafetensorsTensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 8, CommentHandling = JsonCommentHandling.Disallow });
        try
        {
            Expect(ref reader, JsonTokenType.StartObject, file, "the header must be a JSON object");
            while (Next(ref reader, file) && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString()!;
                if (!names.Add(name))
                {
                    throw Error(file, $"the name '{name}' appears twice in the header");
                }

                Next(ref reader, file);
                if (name == "__metadata__")
                {
                    ReadMetadata(ref reader, metadata, file);
                }
                else
                {
                    tensors.Add(ReadTensor(ref reader, name, file));
                }
            }

            if (reader.Read())
            {
                // Trailing spaces are allowed (writers pad the header to 8 bytes); anything else is not.
                throw Error(file, "unexpected content after the header object");
            }
        }
        catch (JsonException e)
        {
            throw Error(file, $"the header is not valid UTF-8 JSON ({e.Message})");
        }
        catch (InvalidOperationException e)
        {
            throw Error(file, $"the header is not valid JSON ({e.Message})");
        }

        CheckLayout(tensors, dataLength, file);
        tensors.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        return new SafetensorsHeader(tensors, metadata);
    }

    /// <summary>Serialises a header (tensors in the given order, offsets as given), padded with spaces to 8 bytes.</summary>
    public static byte[] Serialize(IEnumerable<SafetensorsTensorInfo> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata)
                {
                    writer.WriteString(key, value);
                }

                writer.WriteEndObject();
            }

            foreach (var tensor in tensors)
            {
                writer.WriteStartObject(tensor.Name);
                writer.WriteString("dtype", tensor.DType.ToString());
                writer.WriteStartArray("shape");
                foreach (var dim in tensor.Shape)
                {
                    writer.WriteNumberValue(dim);
                }

                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(tensor.Begin);
                writer.WriteNumberValue(tensor.End);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        var length = buffer.Length;
        var padded = (length + 7) / 8 * 8;
        for (var i = length; i < padded; i++)
        {
            buffer.WriteByte((byte)' ');
        }

        return buffer.ToArray();
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string file)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Error(file, "__metadata__ must be an object of strings");
        }

        while (Next(ref reader, file) && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            Next(ref reader, file);
            if (reader.TokenType != JsonTokenType.String)
            {
                throw Error(file, $"__metadata__.{key} must be a string");
            }

            if (!metadata.TryAdd(key, reader.GetString()!))
            {
                throw Error(file, $"__metadata__.{key} appears twice");
            }
        }
    }

    private static SafetensorsTensorInfo ReadTensor(ref Utf8JsonReader reader, string name, string file)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Error(file, $"tensor '{name}' must be an object with dtype, shape and data_offsets");
        }

        SafetensorsDType? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        while (Next(ref reader, file) && reader.TokenType != JsonTokenType.EndObject)
        {
            var field = reader.GetString()!;
            Next(ref reader, file);
            switch (field)
            {
                case "dtype" when dtype is null:
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw Error(file, $"tensor '{name}': dtype must be a string");
                    }

                    var text = reader.GetString()!;
                    dtype = SafetensorsDTypeExtensions.Parse(text) ?? throw Error(file, $"tensor '{name}': unknown dtype '{text}'");
                    break;
                case "shape" when shape is null:
                    shape = ReadIntegers(ref reader, file, name, "shape", MaxRank);
                    break;
                case "data_offsets" when offsets is null:
                    offsets = ReadIntegers(ref reader, file, name, "data_offsets", 2);
                    if (offsets.Length != 2)
                    {
                        throw Error(file, $"tensor '{name}': data_offsets must hold exactly two numbers");
                    }

                    break;
                case "dtype" or "shape" or "data_offsets":
                    throw Error(file, $"tensor '{name}': field '{field}' appears twice");
                default:
                    throw Error(file, $"tensor '{name}': unknown field '{field}'");
            }
        }

        if (dtype is null || shape is null || offsets is null)
        {
            throw Error(file, $"tensor '{name}' lacks {(dtype is null ? "dtype" : shape is null ? "shape" : "data_offsets")}");
        }

        long elements = 1;
        foreach (var dim in shape)
        {
            elements = CheckedMultiply(elements, dim, file, name);
        }

        var bytes = CheckedMultiply(elements, dtype.Value.Size(), file, name);
        if (offsets[1] < offsets[0] || offsets[1] - offsets[0] != bytes)
        {
            throw Error(file, $"tensor '{name}': shape [{string.Join(",", shape)}] of {dtype} needs {bytes} bytes but data_offsets [{offsets[0]},{offsets[1]}] span {offsets[1] - offsets[0]}");
        }

        return new SafetensorsTensorInfo(name, dtype.Value, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadIntegers(ref Utf8JsonReader reader, string file, string tensor, string field, int maxCount)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Error(file, $"tensor '{tensor}': {field} must be an array of non-negative integers");
        }

        var values = new List<long>();
        while (Next(ref reader, file) && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var value) || value < 0)
            {
                throw Error(file, $"tensor '{tensor}': {field} must be an array of non-negative integers");
            }

            if (values.Count == maxCount)
            {
                throw Error(file, $"tensor '{tensor}': {field} has more than {maxCount} entries");
            }

            values.Add(value);
        }

        return values.ToArray();
    }

    private static void CheckLayout(List<SafetensorsTensorInfo> tensors, long dataLength, string file)
    {
        var ordered = tensors.OrderBy(t => t.Begin).ThenBy(t => t.End).ToList();
        long expected = 0;
        foreach (var tensor in ordered)
        {
            if (tensor.Begin < expected)
            {
                throw Error(file, $"tensor '{tensor.Name}' overlaps the tensor before it (starts at {tensor.Begin}, previous ends at {expected})");
            }

            if (tensor.Begin > expected)
            {
                throw Error(file, $"gap in the data area before tensor '{tensor.Name}' (bytes {expected}..{tensor.Begin} belong to no tensor)");
            }

            if (tensor.End > dataLength)
            {
                throw Error(file, $"tensor '{tensor.Name}' ends at {tensor.End}, past the end of the data area ({dataLength} bytes): the file is truncated or the header lies");
            }

            expected = tensor.End;
        }

        if (expected != dataLength)
        {
            throw Error(file, $"the data area has {dataLength} bytes but the tensors cover {expected}: the file has trailing bytes or is truncated");
        }
    }

    private static long CheckedMultiply(long a, long b, string file, string tensor)
    {
        try
        {
            return checked(a * b);
        }
        catch (OverflowException)
        {
            throw Error(file, $"tensor '{tensor}': shape overflows 64 bits");
        }
    }

    private static bool Next(ref Utf8JsonReader reader, string file)
    {
        if (!reader.Read())
        {
            throw Error(file, "the header JSON ends early");
        }

        return true;
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type, string file, string what)
    {
        if (!reader.Read() || reader.TokenType != type)
        {
            throw Error(file, what);
        }
    }

    internal static SafetensorsException Error(string file, string problem) => new($"{file}: {problem}.");
}
