namespace FlexOlmo.Formats.Safetensors;

/// <summary>One tensor's header entry. Offsets are relative to the start of the data area.</summary>
public sealed record SafetensorsTensorInfo(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}
