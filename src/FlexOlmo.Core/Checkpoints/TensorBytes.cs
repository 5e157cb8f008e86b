using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>Moves raw bytes between safetensors storage and tensors, in chunks so no copy exceeds 1 GiB.</summary>
public static class TensorBytes
{
    private const long Chunk = 1L << 30;

    public static ScalarType ToScalarType(SafetensorsDType dtype, string source) => dtype switch
    {
        SafetensorsDType.F32 => ScalarType.Float32,
        SafetensorsDType.BF16 => ScalarType.BFloat16,
        SafetensorsDType.F16 => ScalarType.Float16,
        SafetensorsDType.F64 => ScalarType.Float64,
        SafetensorsDType.I64 => ScalarType.Int64,
        SafetensorsDType.I32 => ScalarType.Int32,
        SafetensorsDType.I16 => ScalarType.Int16,
        SafetensorsDType.I8 => ScalarType.Int8,
        SafetensorsDType.U8 => ScalarType.Byte,
        SafetensorsDType.BOOL => ScalarType.Bool,
        _ => throw new CheckpointException($"{source}: dtype {dtype} cannot be loaded into a tensor here."),
    };

    public static SafetensorsDType ToSafetensors(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => SafetensorsDType.F32,
        ScalarType.BFloat16 => SafetensorsDType.BF16,
        ScalarType.Float16 => SafetensorsDType.F16,
        ScalarType.Float64 => SafetensorsDType.F64,
        ScalarType.Int64 => SafetensorsDType.I64,
        ScalarType.Int32 => SafetensorsDType.I32,
        ScalarType.Int16 => SafetensorsDType.I16,
        ScalarType.Int8 => SafetensorsDType.I8,
        ScalarType.Byte => SafetensorsDType.U8,
        ScalarType.Bool => SafetensorsDType.BOOL,
        _ => throw new CheckpointException($"dtype {dtype} has no safetensors spelling."),
    };

    /// <summary>
    /// Reads <paramref name="shape"/> elements starting <paramref name="byteOffset"/> into a stored tensor, as a new CPU
    /// tensor of the stored dtype. Plain reads, not the memory map: copying from the map would leave every page of the
    /// file resident beside the tensors until the file closes (measured: 2.2x the model's bytes for a 1B model).
    /// </summary>
    public static Tensor Read(SafetensorsFile file, SafetensorsTensorInfo info, long byteOffset, long[] shape)
    {
        var dtype = ToScalarType(info.DType, file.Path);
        var result = empty(shape, dtype, CPU);
        var length = result.numel() * info.DType.Size();
        using var flat = result.view(-1);
        var perElement = info.DType.Size();
        for (long done = 0; done < length; done += Chunk)
        {
            var count = Math.Min(Chunk, length - done);
            using var part = flat.narrow(0, done / perElement, count / perElement);
            file.Read(info, byteOffset + done, part.bytes); // a plain read: the model's bytes are resident once, not again as mapped pages
        }

        return result;
    }

    /// <summary>Writes a tensor's bytes (as <paramref name="dtype"/>, on the CPU, contiguous) to a stream.</summary>
    public static void Write(Tensor tensor, ScalarType dtype, Stream stream)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().to(dtype).cpu().contiguous();
        using var flat = cpu.view(-1);
        var perElement = cpu.ElementSize;
        var elements = flat.numel();
        var perChunk = Chunk / perElement;
        for (long done = 0; done < elements; done += perChunk)
        {
            using var part = flat.narrow(0, done, Math.Min(perChunk, elements - done));
            stream.Write(part.bytes);
        }
    }
}
