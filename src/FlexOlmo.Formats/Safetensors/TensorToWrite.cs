namespace FlexOlmo.Formats.Safetensors;

/// <summary>
/// A tensor to be written: its header entry, and a callback that writes exactly its bytes when its turn comes
/// (so a writer holds one tensor in memory at a time).
/// </summary>
public sealed record TensorToWrite(string Name, SafetensorsDType DType, long[] Shape, Action<Stream> WriteData)
{
    public long ByteLength => Shape.Aggregate(1L, (a, b) => checked(a * b)) * DType.Size();
}
