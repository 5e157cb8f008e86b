using System.Runtime.CompilerServices;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// B=batch, N=heads, D=head dim

/// <summary>
/// RoPE for one token per row on the CPU, in managed code: x·cos + rotate_half(x)·sin with each product and the sum
/// rounded to fp32 in turn and one rounding to x's dtype at the end, the same operations, in the same order, as
/// <see cref="Modeling.Olmo2RotaryEmbedding.Apply"/>'s libtorch ops, so the result is bit for bit theirs.
/// </summary>
/// <remarks>
/// Written by hand because those ten libtorch ops (narrows, neg, cat, two products, a sum, a cast) cost 15-25 us at one
/// token (measured here), twice per layer of a decode step. C# never contracts a*b + c*d into a fused multiply-add,
/// which is what keeps the roundings libtorch's. Used only without autograd.
/// </remarks>
internal static unsafe class CpuRotary
{
    public static bool Applies(Tensor x, Tensor cos, Tensor sin) =>
        ManagedKernels.Usable(x, cos) && sin.device_type == TorchSharp.DeviceType.CPU
        && x.dim() == 4 && x.size(2) == 1 && x.size(3) % 2 == 0 && x.numel() < int.MaxValue
        && x.dtype is ScalarType.Float32 or ScalarType.BFloat16 && x.is_contiguous()
        && cos.dtype == ScalarType.Float32 && sin.dtype == ScalarType.Float32 && cos.is_contiguous() && sin.is_contiguous()
        && cos.dim() == 3 && cos.size(0) == x.size(0) && cos.size(1) == 1 && cos.size(2) == x.size(3) && TensorShapes.Same(sin, cos);

    /// <summary>x [B, N, 1, D] rotated by cos/sin [B, 1, D] fp32 -> [B, N, 1, D] in x's dtype.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var batch = (int)x.size(0);
        var heads = (int)x.size(1);
        var dim = (int)x.size(3);
        var output = empty(TensorShapes.Of(x), x.dtype);
        var input = Unsafe.AsPointer(ref x.bytes.GetPinnableReference());
        var result = Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        var c = (float*)Unsafe.AsPointer(ref cos.bytes.GetPinnableReference());
        var s = (float*)Unsafe.AsPointer(ref sin.bytes.GetPinnableReference());
        var isBf16 = x.dtype == ScalarType.BFloat16;
        for (var b = 0; b < batch; b++)
        {
            for (var n = 0; n < heads; n++)
            {
                var offset = (((long)b * heads) + n) * dim;
                if (isBf16)
                {
                    Head<Bf16Elements>((ushort*)input + offset, (ushort*)result + offset, c + ((long)b * dim), s + ((long)b * dim), dim);
                }
                else
                {
                    Head<F32Elements>((float*)input + offset, (float*)result + offset, c + ((long)b * dim), s + ((long)b * dim), dim);
                }
            }
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Head<T>(void* x, void* y, float* c, float* s, int dim)
        where T : struct, IElements
    {
        var half = dim / 2;
        for (var d = 0; d < dim; d++)
        {
            var rotated = d < half ? -T.Load1(x, d + half) : T.Load1(x, d - half);
            var first = T.Load1(x, d) * c[d];
            var second = rotated * s[d];
            T.Store1(y, d, first + second);
        }
    }
}
