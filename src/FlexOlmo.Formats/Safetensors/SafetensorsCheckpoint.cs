using System.Text.Json;

namespace FlexOlmo.Formats.Safetensors;

/// <summary>
/// The tensors of a checkpoint folder: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>. Every shard's header is validated when the checkpoint opens.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";
    private const long MaxIndexBytes = 64L << 20;

    private readonly Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> _tensors;

    private SafetensorsCheckpoint(string source, IReadOnlyList<SafetensorsFile> files, Dictionary<string, (SafetensorsFile, SafetensorsTensorInfo)> tensors)
    {
        Source = source;
        Files = files;
        _tensors = tensors;
        Names = files.SelectMany(f => f.Header.Tensors.Select(t => t.Name)).Where(tensors.ContainsKey).ToList();
    }

    /// <summary>The folder or file the checkpoint was opened from (for messages).</summary>
    public string Source { get; }

    public IReadOnlyList<SafetensorsFile> Files { get; }

    /// <summary>Tensor names in storage order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The first file's <c>__metadata__</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata => Files.Count > 0 ? Files[0].Header.Metadata : new Dictionary<string, string>();

    public long TotalBytes => _tensors.Values.Sum(t => t.Info.ByteLength);

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public (SafetensorsFile File, SafetensorsTensorInfo Info) Locate(string name) =>
        _tensors.TryGetValue(name, out var found) ? found : throw new SafetensorsException($"{Source}: has no tensor '{name}'.");

    /// <summary>Opens a checkpoint folder (index first, then model.safetensors) or a single .safetensors file.</summary>
    public static SafetensorsCheckpoint Open(string path)
    {
        if (File.Exists(path))
        {
            return path.EndsWith(".json", StringComparison.Ordinal) ? OpenIndex(path) : OpenSingle(path);
        }

        if (!Directory.Exists(path))
        {
            throw new SafetensorsException($"{path}: no such checkpoint folder or file.");
        }

        var index = System.IO.Path.Combine(path, IndexFileName);
        if (File.Exists(index))
        {
            return OpenIndex(index);
        }

        var single = System.IO.Path.Combine(path, SingleFileName);
        if (File.Exists(single))
        {
            return OpenSingle(single);
        }

        throw new SafetensorsException($"{path}: holds neither {IndexFileName} nor {SingleFileName}. Is it a Hugging Face checkpoint folder?");
    }

    private static SafetensorsCheckpoint OpenSingle(string file)
    {
        var opened = SafetensorsFile.Open(file);
        try
        {
            var tensors = opened.Header.Tensors.ToDictionary(t => t.Name, t => (opened, t), StringComparer.Ordinal);
            var checkpoint = new SafetensorsCheckpoint(file, [opened], tensors);
            opened = null; // the checkpoint owns it now
            return checkpoint;
        }
        finally
        {
            opened?.Dispose();
        }
    }

    private static SafetensorsCheckpoint OpenIndex(string indexPath)
    {
        var info = new FileInfo(indexPath);
        if (info.Length > MaxIndexBytes)
        {
            throw new SafetensorsException($"{indexPath}: {info.Length} bytes is larger than the {MaxIndexBytes} allowed for an index.");
        }

        Dictionary<string, string> weightMap;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(indexPath), new JsonDocumentOptions { MaxDepth = 8 });
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new SafetensorsException($"{indexPath}: lacks the object 'weight_map' (tensor name -> shard file).");
            }

            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw new SafetensorsException($"{indexPath}: weight_map.{entry.Name} must be a file name.");
                }

                if (!weightMap.TryAdd(entry.Name, entry.Value.GetString()!))
                {
                    throw new SafetensorsException($"{indexPath}: weight_map lists '{entry.Name}' twice.");
                }
            }
        }
        catch (JsonException e)
        {
            throw new SafetensorsException($"{indexPath}: not valid JSON ({e.Message}).");
        }

        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var files = new List<SafetensorsFile>();
        var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var tensors = new Dictionary<string, (SafetensorsFile, SafetensorsTensorInfo)>(StringComparer.Ordinal);
        try
        {
            foreach (var shardName in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (!IsPlainFileName(shardName))
                {
                    throw new SafetensorsException($"{indexPath}: shard name '{shardName}' must be a plain .safetensors file name in the same folder.");
                }

                var shard = SafetensorsFile.Open(System.IO.Path.Combine(folder, shardName));
                files.Add(shard);
                byShard[shardName] = shard;
            }

            foreach (var (name, shardName) in weightMap)
            {
                var shard = byShard[shardName];
                if (!shard.Header.ByName.TryGetValue(name, out var tensor))
                {
                    throw new SafetensorsException($"{indexPath}: maps '{name}' to {shardName}, which has no such tensor.");
                }

                tensors[name] = (shard, tensor);
            }

            foreach (var shard in files)
            {
                var stray = shard.Header.Tensors.FirstOrDefault(t => !weightMap.TryGetValue(t.Name, out var s) || s != System.IO.Path.GetFileName(shard.Path));
                if (stray is not null)
                {
                    throw new SafetensorsException($"{shard.Path}: holds '{stray.Name}', which {IndexFileName} does not map to this shard.");
                }
            }
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }

        return new SafetensorsCheckpoint(indexPath, files, tensors);
    }

    internal static bool IsPlainFileName(string name) =>
        name.Length is > 0 and < 256 && name.EndsWith(".safetensors", StringComparison.Ordinal) && name != ".safetensors"
        && name.IndexOfAny(['/', '\\', '\0']) < 0 && !name.StartsWith('.');

    public void Dispose()
    {
        foreach (var file in Files)
        {
            file.Dispose();
        }
    }
}
