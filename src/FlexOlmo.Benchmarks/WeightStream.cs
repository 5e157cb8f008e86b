using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// The decode bound, measured rather than computed: one pass that reads the very weight tensors a decode step reads
/// (attention, router, the experts a step is expected to touch, lm_head), summing them over the same threads as the
/// kernels, with nothing else. This machine's bandwidth drifts by up to 1.7x within a minute (measured: 31 to 53 GB/s
/// for the same 1 GiB sum), so a bound taken from a separate bandwidth figure compares a decode run at one moment with
/// the best moment of another; the decode benchmark pairs each step with a pass made just before it instead.
/// </summary>
internal sealed unsafe class WeightStream
{
    private const long ChunkBytes = 1 << 20;
    private readonly (nint Address, long Bytes)[] _chunks;
    private readonly Olmo2ForCausalLM _model;

    /// <summary>
    /// The weights one decode step of <paramref name="batch"/> rows reads in <paramref name="model"/> (CPU). It takes their
    /// addresses and no tensor of its own, so the weights go with the model; use it only while the model lives.
    /// </summary>
    public WeightStream(Olmo2ForCausalLM model, int batch)
    {
        _model = model;
        var touched = ExpectedExperts(model.Config, batch);
        var chunks = new List<(nint, long)>();
        foreach (var (name, parameter) in model.NamedParameters())
        {
            if (parameter.dim() != 2 || name == TensorNames.EmbedTokens)
            {
                continue; // norms are a few KB; an embedding step reads one row
            }

            if (!parameter.is_contiguous())
            {
                throw new InvalidOperationException($"{name} is not contiguous; the decode kernel would not read it as one stream either.");
            }

            var expert = TensorNames.ParseExpert(name)?.Expert;
            var fraction = expert is null ? 1.0 : Math.Clamp(touched - expert.Value, 0.0, 1.0); // experts 0..touched-1, the last one in part
            var bytes = (long)(parameter.numel() * parameter.ElementSize * fraction) & ~63L;
            var start = (nint)Unsafe.AsPointer(ref parameter.bytes.GetPinnableReference());
            for (long offset = 0; offset < bytes; offset += ChunkBytes)
            {
                chunks.Add((start + (nint)offset, Math.Min(ChunkBytes, bytes - offset)));
            }
        }

        _chunks = chunks.ToArray();
        Bytes = _chunks.Sum(c => c.Bytes);
    }

    /// <summary>Bytes one pass reads.</summary>
    public long Bytes { get; }

    /// <summary>Expected distinct experts per layer that a step of <paramref name="batch"/> rows touches: E(1 - (1 - k/E)^B).</summary>
    public static double ExpectedExperts(ModelConfig c, int batch) => c.NumExperts <= 1
        ? c.NumExperts
        : c.NumExperts * (1 - Math.Pow(1 - ((double)c.NumExpertsPerTok / c.NumExperts), batch));

    /// <summary>Seconds to read every chunk once, split over libtorch's thread count.</summary>
    public double Pass()
    {
        var threads = Math.Max(1, get_num_threads());
        var chunks = _chunks;
        var watch = Stopwatch.StartNew();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var first = chunks.Length * t / threads;
            var last = chunks.Length * (t + 1) / threads;
            var total = Vector256<float>.Zero;
            for (var c = first; c < last; c++)
            {
                total += Sum((float*)chunks[c].Address, chunks[c].Bytes / sizeof(float));
            }

            GC.KeepAlive(total);
        });
        var seconds = watch.Elapsed.TotalSeconds;
        GC.KeepAlive(_model);
        return seconds;
    }

    /// <summary>
    /// Sums <paramref name="count"/> floats as four streams at once (the quarters of the chunk), as the decode kernel reads
    /// four weight rows at once: on a 2-core Xeon one stream per thread read 13-19 GB/s, four 20-25 (measured on 1 GiB).
    /// </summary>
    private static Vector256<float> Sum(float* p, long count)
    {
        var quarter = (count / 4) & ~15L;
        var p1 = p + quarter;
        var p2 = p1 + quarter;
        var p3 = p2 + quarter;
        Vector256<float> a = default, b = default, c = default, d = default;
        long i = 0;
        for (; i < quarter; i += 16)
        {
            a += Vector256.Load(p + i) + Vector256.Load(p + i + 8);
            b += Vector256.Load(p1 + i) + Vector256.Load(p1 + i + 8);
            c += Vector256.Load(p2 + i) + Vector256.Load(p2 + i + 8);
            d += Vector256.Load(p3 + i) + Vector256.Load(p3 + i + 8);
        }

        for (i = 4 * quarter; i + 8 <= count; i += 8)
        {
            a += Vector256.Load(p + i);
        }

        return a + b + c + d;
    }
}
