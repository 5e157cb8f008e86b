using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    /// <summary>Eight at once, bit for bit <see cref="FromSingle(float)"/>.</summary>
    /// <remarks>With AVX-512 the narrowing is one instruction (vpmovdw); the portable one shuffles two halves.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ushort> FromSingle(Vector256<float> values)
    {
        var rounded = Rounded(values) >> 16;
        return Avx512F.VL.IsSupported
            ? Avx512F.VL.ConvertToVector128UInt16(rounded)
            : Vector128.Narrow(rounded.GetLower(), rounded.GetUpper());
    }

    /// <summary>
    /// Eight values as bf16 holds them, widened back to fp32: bit for bit <c>ToSingle(FromSingle(values))</c>, without
    /// narrowing to 16 bits and widening again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Round(Vector256<float> values) => (Rounded(values) & Vector256.Create(0xFFFF0000u)).AsSingle();

    /// <summary>Each value's bits with its bf16 rounding added (the bf16 in the upper 16 bits), NaN as 0x7FC0 there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Rounded(Vector256<float> values)
    {
        var bits = values.AsUInt32();
        var rounded = bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One);
        var isNaN = ~Vector256.Equals(values, values).AsUInt32();
        return Vector256.ConditionalSelect(isNaN, Vector256.Create(0x7FC00000u), rounded);
    }

    /// <summary>Eight at once, exactly <see cref="ToSingle(ushort)"/>: bf16 is the upper half of an fp32, so widening and shifting left by 16 is exact.</summary>
    /// <remarks>
    /// With AVX2, one zero-extension to 32 bits (which folds the load) and one shift: the portable widening's two halves
    /// and their join cost more where the kernels widen every bf16 they read, as attention does for its keys and values
    /// (measured on a 2-core Zen 5 EPYC, 16 rows of 16 heads over 144 keys in cache: 0.8x the time).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ToSingle(Vector128<ushort> bits)
    {
        if (Avx2.IsSupported)
        {
            return Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(bits), 16).AsSingle();
        }

        var (lower, upper) = Vector128.Widen(bits);
        return Vector256.Create(lower << 16, upper << 16).AsSingle();
    }

    /// <summary>Sixteen at once, exactly <see cref="ToSingle(ushort)"/>: with AVX-512 one zero-extension and one shift, as <see cref="ToSingle(Vector128{ushort})"/> does with AVX2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ToSingle(Vector256<ushort> bits)
    {
        if (Avx512F.IsSupported)
        {
            return Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(bits), 16).AsSingle();
        }

        return Vector512.Create(ToSingle(bits.GetLower()), ToSingle(bits.GetUpper()));
    }
}
