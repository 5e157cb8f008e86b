using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// How a storage dtype's elements load as fp32 and store back, for the managed kernels: one implementation per dtype,
/// specialised by the JIT (a generic kernel over <c>T : IElements</c> compiles to straight code for each).
/// </summary>
internal unsafe interface IElements
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>Eight elements from <paramref name="i"/>, widened exactly to fp32.</summary>
    static abstract Vector256<float> Load8(void* p, int i);

    /// <summary>Sixteen elements from <paramref name="i"/>, widened exactly to fp32 (with AVX-512).</summary>
    static abstract Vector512<float> Load16(void* p, int i);

    static abstract float Load1(void* p, int i);

    /// <summary>Stores <paramref name="value"/> rounded to this dtype.</summary>
    static abstract void Store1(void* p, int i, float value);

    /// <summary>Stores eight values from <paramref name="i"/>, each rounded exactly as <see cref="Store1"/> rounds it.</summary>
    static abstract void Store8(void* p, int i, Vector256<float> values);

    /// <summary><paramref name="value"/> as this dtype holds it (what storing and loading it again gives).</summary>
    static abstract float Round(float value);

    /// <summary>Eight values as this dtype holds them, each exactly as <see cref="Round"/>.</summary>
    static abstract Vector256<float> Round8(Vector256<float> values);
}

internal readonly unsafe struct F32Elements : IElements
{
    public static int Size => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(void* p, int i) => Vector256.Load((float*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* p, int i) => Vector512.Load((float*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(void* p, int i) => ((float*)p)[i];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store1(void* p, int i, float value) => ((float*)p)[i] = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store8(void* p, int i, Vector256<float> values) => values.Store((float*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Round8(Vector256<float> values) => values;
}

internal readonly unsafe struct Bf16Elements : IElements
{
    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(void* p, int i) => BFloat16Bits.ToSingle(Vector128.Load((ushort*)p + i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* p, int i) => BFloat16Bits.ToSingle(Vector256.Load((ushort*)p + i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(void* p, int i) => BFloat16Bits.ToSingle(((ushort*)p)[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store1(void* p, int i, float value) => ((ushort*)p)[i] = BFloat16Bits.FromSingle(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store8(void* p, int i, Vector256<float> values) => BFloat16Bits.FromSingle(values).Store((ushort*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float value) => BFloat16Bits.ToSingle(BFloat16Bits.FromSingle(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Round8(Vector256<float> values) => BFloat16Bits.Round(values);
}
