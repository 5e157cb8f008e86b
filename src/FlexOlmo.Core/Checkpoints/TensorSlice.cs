using System.Buffers;
using System.Security.Cryptography;
using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>
/// A tensor, or a contiguous part of one (one expert of a fused tensor, one row of a router), in a safetensors file:
/// read, copied, compared and hashed by streaming plain reads, so checking or moving a whole checkpoint never holds
/// it in memory.
/// </summary>
public sealed record TensorSlice(SafetensorsFile File, SafetensorsTensorInfo Info, long ByteOffset, long[] Shape)
{
    private const int Chunk = 1 << 22;

    public SafetensorsDType DType => Info.DType;

    public long ByteLength => Shape.Aggregate(1L, (a, b) => a * b) * DType.Size();

    public static TensorSlice Whole(SafetensorsFile file, SafetensorsTensorInfo info) => new(file, info, 0, info.Shape);

    /// <summary>One row of a 2-D tensor [rows, width] as a [width] slice.</summary>
    public TensorSlice Row(long row)
    {
        var width = Shape[^1];
        return new TensorSlice(File, Info, ByteOffset + (row * width * DType.Size()), [width]);
    }

    public void CopyTo(Stream destination) => File.CopyTo(Info, ByteOffset, ByteLength, destination);

    /// <summary>Whether both slices hold the same dtype, shape and bytes (compared chunk by chunk).</summary>
    public bool SameAs(TensorSlice other)
    {
        if (DType != other.DType || !Shape.SequenceEqual(other.Shape))
        {
            return false;
        }

        var mine = ArrayPool<byte>.Shared.Rent(Chunk);
        var theirs = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            for (long done = 0; done < ByteLength; done += Chunk)
            {
                var count = (int)Math.Min(Chunk, ByteLength - done);
                File.Read(Info, ByteOffset + done, mine.AsSpan(0, count));
                other.File.Read(other.Info, other.ByteOffset + done, theirs.AsSpan(0, count));
                if (!mine.AsSpan(0, count).SequenceEqual(theirs.AsSpan(0, count)))
                {
                    return false;
                }
            }

            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(mine);
            ArrayPool<byte>.Shared.Return(theirs);
        }
    }

    /// <summary>SHA-256 of the bytes.</summary>
    public byte[] Sha256()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            for (long done = 0; done < ByteLength; done += Chunk)
            {
                var count = (int)Math.Min(Chunk, ByteLength - done);
                File.Read(Info, ByteOffset + done, buffer.AsSpan(0, count));
                hash.AppendData(buffer, 0, count);
            }

            return hash.GetHashAndReset();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
