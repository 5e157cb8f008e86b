using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Packages;

/// <summary>
/// A SHA-256 over a checkpoint's tensors (sorted by name: name, dtype, shape, byte length, bytes), independent of how
/// they are sharded and what the files are called. Two anchors with the same fingerprint compute the same function.
/// </summary>
public static class TensorFingerprint
{
    public static string Compute(SafetensorsCheckpoint checkpoint, CancellationToken cancellationToken = default) =>
        Compute(checkpoint.Names.Select(name =>
        {
            var (file, info) = checkpoint.Locate(name);
            return new TensorToWrite(name, info.DType, info.Shape, sink => file.CopyTo(info, 0, info.ByteLength, sink));
        }), cancellationToken);

    /// <summary>
    /// The fingerprint of a checkpoint before it is written (each tensor's bytes streamed from its source), so a
    /// writer can know what it writes without reading it back.
    /// </summary>
    public static string Compute(IEnumerable<TensorToWrite> tensors, CancellationToken cancellationToken = default)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[8];
        foreach (var tensor in tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            hash.AppendData(Encoding.UTF8.GetBytes($"{tensor.Name}\0{tensor.DType}\0{string.Join(",", tensor.Shape)}\0"));
            BinaryPrimitives.WriteInt64LittleEndian(length, tensor.ByteLength);
            hash.AppendData(length);
            using var sink = new HashingStream(hash);
            tensor.WriteData(sink);
        }

        return FileDigest.Prefix(hash.GetHashAndReset());
    }

    public static string Compute(string checkpointFolder)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(checkpointFolder);
        return Compute(checkpoint);
    }
}
