namespace FlexOlmo.Formats.Safetensors;

/// <summary>The element types of the safetensors format, by their header spelling.</summary>
public enum SafetensorsDType
{
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    BOOL,
#pragma warning disable CA1707 // the header spelling, underscores included
    F8_E4M3,
    F8_E5M2,
#pragma warning restore CA1707
}

public static class SafetensorsDTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 or SafetensorsDType.U64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 or SafetensorsDType.U32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 or SafetensorsDType.U16 => 2,
        _ => 1,
    };

    /// <summary>Parses a header dtype; null when unknown.</summary>
    public static SafetensorsDType? Parse(string text) =>
        Enum.TryParse<SafetensorsDType>(text, ignoreCase: false, out var value) && Enum.IsDefined(value) && text == value.ToString() ? value : null;
}
