using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Packages;

/// <summary>
/// Router embedding vectors on disk. Written as safetensors ("router_embedding" fp32, provenance in the metadata):
/// one vector [H] for every layer, or one row per layer [L, H] (an anchor taken from a released model, whose public
/// router rows differ by layer). Vectors are also read from any one-tensor safetensors file, from NumPy .npy
/// (float32/float64, 1-D or [1, d]) and from JSON (an array, or an object with "embedding"), so vectors made by
/// external embedders work.
/// </summary>
public static partial class RouterEmbeddingFile
{
    private const long MaxBytes = 64L << 20;
    private const string ProvenanceKey = "provenance";

    public static void Write(string path, float[] vector, RouterEmbeddingProvenance provenance)
    {
        var bytes = new byte[vector.Length * 4];
        for (var i = 0; i < vector.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), vector[i]);
        }

        SafetensorsWriter.WriteFile(
            path,
            [new TensorToWrite(ExpertTensorNames.EmbeddingVector, SafetensorsDType.F32, [vector.Length], s => s.Write(bytes))],
            new Dictionary<string, string> { [ProvenanceKey] = JsonSerializer.Serialize(provenance, SignedDocument<ExpertManifest>.Options) });
    }

    /// <summary>
    /// Writes one router row per layer ([L, H] fp32), or the one vector [H] when every layer has the same row (what
    /// the method's shared initialisation gives), so that anchors differ in form only where their routers do.
    /// </summary>
    /// <returns>The provenance as written (with <see cref="RouterEmbeddingProvenance.Layers"/> set when rows differ).</returns>
    public static RouterEmbeddingProvenance WriteRows(string path, IReadOnlyList<float[]> rows, RouterEmbeddingProvenance provenance)
    {
        var width = rows[0].Length;
        if (rows.Any(r => r.Length != width))
        {
            throw new PackageException($"{path}: every layer's router row must have the same width.");
        }

        if (rows.All(r => MemoryMarshal.AsBytes(r.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(rows[0].AsSpan())))) // bit for bit
        {
            Write(path, rows[0], provenance with { Layers = null });
            return provenance with { Layers = null };
        }

        var bytes = new byte[rows.Count * width * 4];
        for (var l = 0; l < rows.Count; l++)
        {
            for (var i = 0; i < width; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(((l * width) + i) * 4), rows[l][i]);
            }
        }

        SafetensorsWriter.WriteFile(
            path,
            [new TensorToWrite(ExpertTensorNames.EmbeddingVector, SafetensorsDType.F32, [rows.Count, width], s => s.Write(bytes))],
            new Dictionary<string, string> { [ProvenanceKey] = JsonSerializer.Serialize(provenance with { Layers = rows.Count }, SignedDocument<ExpertManifest>.Options) });
        return provenance with { Layers = rows.Count };
    }

    /// <summary>
    /// One row per layer: a file with one vector gives it to every layer, a file of [L, H] gives each layer its own.
    /// The width and number of layers must be the model's.
    /// </summary>
    public static float[][] ReadRows(string path, int layers, int width)
    {
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) && File.Exists(path) && new FileInfo(path).Length <= MaxBytes)
        {
            using var file = SafetensorsFile.Open(path);
            if (file.Header.ByName.GetValueOrDefault(ExpertTensorNames.EmbeddingVector) is { Shape.Length: 2 } matrix)
            {
                if (matrix.DType != SafetensorsDType.F32 || matrix.Shape[0] != layers || matrix.Shape[1] != width)
                {
                    throw new PackageException($"{path}: router rows are {matrix.DType} [{string.Join(",", matrix.Shape)}]; the model needs float32 [{layers},{width}].");
                }

                var bytes = file.Bytes(matrix, 0, (int)matrix.ByteLength);
                var rows = new float[layers][];
                for (var l = 0; l < layers; l++)
                {
                    rows[l] = new float[width];
                    for (var i = 0; i < width; i++)
                    {
                        rows[l][i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(((l * width) + i) * 4)..]);
                    }
                }

                return rows.Any(r => r.Any(v => !float.IsFinite(v))) ? throw new PackageException($"{path}: router rows must be finite numbers.") : rows;
            }
        }

        var (vector, _) = Read(path);
        return vector.Length == width
            ? Enumerable.Repeat(vector, layers).ToArray()
            : throw new PackageException($"{path}: the router embedding has width {vector.Length}; the model's hidden size is {width}.");
    }

    /// <summary>The vector and, for files this tool wrote, how it was made.</summary>
    public static (float[] Vector, RouterEmbeddingProvenance? Provenance) Read(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new PackageException($"{path}: no such router embedding file.");
        }

        if (info.Length > MaxBytes)
        {
            throw new PackageException($"{path}: {info.Length} bytes is too large for one embedding vector.");
        }

        var vector = path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? null : path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) ? ReadNpy(path) : ReadJson(path);
        RouterEmbeddingProvenance? provenance = null;
        if (vector is null)
        {
            using var file = SafetensorsFile.Open(path);
            var tensor = file.Header.ByName.GetValueOrDefault(ExpertTensorNames.EmbeddingVector)
                ?? (file.Header.Tensors.Count == 1 ? file.Header.Tensors[0] : throw new PackageException($"{path}: holds {file.Header.Tensors.Count} tensors and none named '{ExpertTensorNames.EmbeddingVector}'."));
            if (tensor.DType != SafetensorsDType.F32 || tensor.ElementCount != tensor.Shape[^1])
            {
                throw new PackageException($"{path}: '{tensor.Name}' must be a 1-D float32 vector (got {tensor.DType} [{string.Join(",", tensor.Shape)}]).");
            }

            var bytes = file.Bytes(tensor, 0, (int)tensor.ByteLength);
            vector = new float[tensor.ElementCount];
            for (var i = 0; i < vector.Length; i++)
            {
                vector[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
            }

            if (file.Header.Metadata.TryGetValue(ProvenanceKey, out var json))
            {
                provenance = JsonSerializer.Deserialize<RouterEmbeddingProvenance>(json, SignedDocument<ExpertManifest>.Options);
            }
        }

        if (vector.Length == 0 || vector.Any(v => !float.IsFinite(v)))
        {
            throw new PackageException($"{path}: the embedding must be a non-empty vector of finite numbers.");
        }

        return (vector, provenance);
    }

    private static float[] ReadNpy(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
        {
            throw new PackageException($"{path}: not a NumPy .npy file.");
        }

        var headerLength = bytes[6] == 1 ? bytes[8] | (bytes[9] << 8) : BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        var start = (bytes[6] == 1 ? 10 : 12) + headerLength;
        if (headerLength <= 0 || start > bytes.Length)
        {
            throw new PackageException($"{path}: malformed NumPy header.");
        }

        var header = Encoding.ASCII.GetString(bytes, start - headerLength, headerLength);
        var descr = DescrPattern().Match(header);
        var shape = ShapePattern().Match(header);
        if (!descr.Success || !shape.Success || header.Contains("'fortran_order': True", StringComparison.Ordinal))
        {
            throw new PackageException($"{path}: expected a C-ordered float32 or float64 vector, got {header.Trim()}.");
        }

        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => long.TryParse(d, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n <= int.MaxValue ? n : throw new PackageException($"{path}: shape ({shape.Groups[1].Value}) is not a vector's.")).ToArray();
        var count = dims.Aggregate(1L, (a, b) => a * b);
        if (dims.Length == 0 || count != dims[^1])
        {
            throw new PackageException($"{path}: expected one vector, got shape ({shape.Groups[1].Value}).");
        }

        var size = descr.Groups[1].Value == "f8" ? 8 : descr.Groups[1].Value == "f4" ? 4 : throw new PackageException($"{path}: dtype '{descr.Groups[1].Value}' is not float32 or float64.");
        if (start + (count * size) > bytes.Length)
        {
            throw new PackageException($"{path}: truncated ({bytes.Length - start} data bytes for {count} values).");
        }

        var vector = new float[count];
        for (var i = 0; i < count; i++)
        {
            vector[i] = size == 4 ? BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(start + (i * 4))) : (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(start + (i * 8)));
        }

        return vector;
    }

    private static float[] ReadJson(string path)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var array = document.RootElement.ValueKind == JsonValueKind.Array
                ? document.RootElement
                : document.RootElement.TryGetProperty("embedding", out var e) ? e : throw new PackageException($"{path}: expected a JSON array of numbers or an object with \"embedding\".");
            return array.EnumerateArray().Select(x => x.GetSingle()).ToArray();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new PackageException($"{path}: not a JSON vector of numbers ({e.Message}).");
        }
    }

    [GeneratedRegex(@"'descr':\s*'[<|=]?(f[48])'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'shape':\s*\(([0-9,\s]*)\)")]
    private static partial Regex ShapePattern();
}
