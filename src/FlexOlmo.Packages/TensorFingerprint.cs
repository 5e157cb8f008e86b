using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Packages;

/// <summary>
/// A SHA-256 over a checkpoint's tensors (sorted by name: name, dtype, shape, byte length, bytes), independent of how
/// they are sharded and what the files are called. Two anchors with the same fingerprint compute the same function.
/// </summary>
public static class TensorFingerprint
{
    public static string Compute(SafetensorsCheckpoint checkpoint)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[8];
        foreach (var name in checkpoint.Names.Order(StringComparer.Ordinal))
        {
            var (file, info) = checkpoint.Locate(name);
            hash.AppendData(Encoding.UTF8.GetBytes($"{name}\0{info.DType}\0{string.Join(",", info.Shape)}\0"));
            BinaryPrimitives.WriteInt64LittleEndian(length, info.ByteLength);
            hash.AppendData(length);
            const int Chunk = 1 << 24;
            for (long done = 0; done < info.ByteLength; done += Chunk)
            {
                hash.AppendData(file.Bytes(info, done, (int)Math.Min(Chunk, info.ByteLength - done)));
            }
        }

        return FileDigest.Prefix(hash.GetHashAndReset());
    }

    public static string Compute(string checkpointFolder)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(checkpointFolder);
        return Compute(checkpoint);
    }
}
