using System.Runtime.CompilerServices;

namespace FlexOlmo.Core.Kernels;

/// <summary>bf16 as libtorch stores it: the upper 16 bits of an fp32.</summary>
internal static class BFloat16Bits
{
    /// <summary>Widening is exact: the bits shifted into the upper half of an fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round to nearest, ties to even, and NaN to the quiet NaN 0x7FC0: the rounding of libtorch's c10::BFloat16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromSingle(float value)
    {
        if (float.IsNaN(value))
        {
            return 0x7FC0;
        }

        var bits = (uint)BitConverter.SingleToInt32Bits(value);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}
