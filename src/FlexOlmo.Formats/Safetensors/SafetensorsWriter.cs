using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FlexOlmo.Formats.Safetensors;

/// <summary>
/// Streaming safetensors writer: single files and size-sharded checkpoints with an index. Each file is written
/// under a temporary name and renamed when complete; the index is written last.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Writes one safetensors file atomically.</summary>
    public static void WriteFile(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors, metadata, hash: null);

    /// <summary>Writes one safetensors file atomically and returns the SHA-256 of its bytes, hashed as they were written.</summary>
    public static byte[] WriteFileHashed(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Write(path, tensors, metadata, hash);
        return hash.GetHashAndReset();
    }

    private static void Write(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata, IncrementalHash? hash)
    {
        CheckNames(tensors, path);
        var infos = new List<SafetensorsTensorInfo>(tensors.Count);
        long offset = 0;
        foreach (var tensor in tensors)
        {
            var length = tensor.ByteLength;
            infos.Add(new SafetensorsTensorInfo(tensor.Name, tensor.DType, tensor.Shape, offset, offset + length));
            offset += length;
        }

        var header = SafetensorsHeader.Serialize(infos, metadata);
        AtomicFile.Write(path, file =>
        {
            using var hashing = hash is null ? null : new HashingStream(hash, file);
            var stream = hashing ?? file;
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var tensor in tensors)
            {
                var counting = new CountingStream(stream);
                tensor.WriteData(counting);
                if (counting.Written != tensor.ByteLength)
                {
                    throw new SafetensorsException($"{path}: tensor '{tensor.Name}' wrote {counting.Written} bytes, expected {tensor.ByteLength}.");
                }
            }
        });
    }

    /// <summary>
    /// Writes a Hugging Face checkpoint into <paramref name="directory"/>: <c>{baseName}.safetensors</c> when it fits in
    /// one shard, else <c>{baseName}-0000i-of-0000n.safetensors</c> plus <c>{baseName}.safetensors.index.json</c>.
    /// Returns the files written; <paramref name="digests"/>, when given, receives each weights file's SHA-256.
    /// </summary>
    public static IReadOnlyList<string> WriteCheckpoint(
        string directory,
        IReadOnlyList<TensorToWrite> tensors,
        long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null,
        string baseName = "model",
        IDictionary<string, byte[]>? digests = null)
    {
        if (maxShardBytes < 1)
        {
            throw new SafetensorsException($"{directory}: the largest shard must be at least 1 byte (got {maxShardBytes}).");
        }

        CheckNames(tensors, directory);
        Directory.CreateDirectory(directory);
        var shards = new List<List<TensorToWrite>> { new() };
        long current = 0;
        foreach (var tensor in tensors)
        {
            if (current > 0 && current + tensor.ByteLength > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }

            shards[^1].Add(tensor);
            current += tensor.ByteLength;
        }

        void WriteShard(string path, List<TensorToWrite> shard)
        {
            if (digests is null)
            {
                WriteFile(path, shard, metadata);
            }
            else
            {
                digests.Add(path, WriteFileHashed(path, shard, metadata));
            }
        }

        var written = new List<string>();
        if (shards.Count == 1)
        {
            var single = Path.Combine(directory, $"{baseName}.safetensors");
            WriteShard(single, shards[0]);
            written.Add(single);
            return written;
        }

        var weightMap = new JsonObject();
        for (var i = 0; i < shards.Count; i++)
        {
            var name = $"{baseName}-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            var path = Path.Combine(directory, name);
            WriteShard(path, shards[i]);
            written.Add(path);
            foreach (var tensor in shards[i])
            {
                weightMap[tensor.Name] = name;
            }
        }

        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = tensors.Sum(t => t.ByteLength) },
            ["weight_map"] = weightMap,
        };
        var indexPath = Path.Combine(directory, $"{baseName}.safetensors.index.json");
        AtomicFile.WriteAllText(indexPath, index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(indexPath);
        return written;
    }

    private static void CheckNames(IReadOnlyList<TensorToWrite> tensors, string target)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tensor in tensors)
        {
            if (tensor.Name.Length == 0 || tensor.Name == "__metadata__" || !names.Add(tensor.Name))
            {
                throw new SafetensorsException($"{target}: tensor name '{tensor.Name}' is empty, reserved or repeated.");
            }
        }
    }

    private sealed class CountingStream(Stream inner) : WriteOnlyStream
    {
        public long Written { get; private set; }

        public override void Flush() => inner.Flush();

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Written += buffer.Length;
        }
    }
}
