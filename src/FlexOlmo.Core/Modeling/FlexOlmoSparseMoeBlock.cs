using FlexOlmo.Core.Kernels;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=tokens, N=B*T, H=hidden, E=experts, k=experts per token, M=routed (token, expert) pairs

/// <summary>
/// FlexOlmo's mixture of SwiGLU experts. Identical to transformers' FlexOlmoSparseMoeBlock: router logits in the
/// model dtype, softmax over ALL experts in fp32, then top-k, renormalised only when norm_topk_prob. Adds what the
/// method needs beyond Hugging Face: per-row expert masks (-inf before the softmax) and, for expert training,
/// an optional per-expert router bias applied as min(b, 0).
/// </summary>
public sealed class FlexOlmoSparseMoeBlock : nn.Module
{
    [ComponentName(Name = "gate")]
    private readonly Olmo2Linear _gate;
    [ComponentName(Name = "experts")]
    private readonly ModuleList<Olmo2Mlp> _experts;
    private readonly Olmo2Mlp[] _expertArray;
    private readonly int _topK;
    private readonly bool _normTopkProb;

    public FlexOlmoSparseMoeBlock(Configuration.ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(FlexOlmoSparseMoeBlock))
    {
        NumExperts = config.NumExperts;
        _topK = config.NumExpertsPerTok;
        _normTopkProb = config.NormTopkProb;
        _gate = new Olmo2Linear(config.HiddenSize, config.NumExperts, device, dtype); // [E, H]
        _expertArray = Enumerable.Range(0, config.NumExperts)
            .Select(_ => new Olmo2Mlp(config.HiddenSize, config.IntermediateSize, device, dtype)).ToArray();
        _experts = new ModuleList<Olmo2Mlp>(_expertArray);
        RegisterComponents();
    }

    public int NumExperts { get; }

    /// <summary>The router: one row (router embedding) per expert, [E, H].</summary>
    public Olmo2Linear Gate => _gate;

    public IReadOnlyList<Olmo2Mlp> Experts => _expertArray;

    /// <summary>
    /// Optional router bias [E] fp32, added as min(b, 0) to the router logits. Not part of Hugging Face checkpoints
    /// (and deliberately not registered, so it never appears in a state dict); expert training sets it.
    /// </summary>
    public Parameter? RouterBias { get; set; }

    /// <summary>x [B, T, H] -> [B, T, H]. <paramref name="expertBias"/> [B, E] holds 0 or -inf per row.</summary>
    public Tensor Forward(Tensor x, Tensor? expertBias, RouterTrace? trace, LinearMode mode = LinearMode.Batched)
    {
        using var scope = NewDisposeScope();
        var batch = x.size(0);
        var tokens = x.size(1);
        var hidden = x.size(2);
        var flat = x.reshape(batch * tokens, hidden); // [N, H]
        var routerLogits = _gate.Compute(flat, mode).to(ScalarType.Float32); // [N, E]
        if (RouterBias is not null)
        {
            routerLogits = routerLogits + RouterBias.clamp_max(0); // [N, E]
        }

        trace?.AddLogits(routerLogits);
        var masked = expertBias is null ? routerLogits : GarbageFreeOps.Add(routerLogits, expertBias.repeat_interleave(tokens, 0)); // [N, E]
        var probabilities = masked.softmax(-1, ScalarType.Float32); // [N, E]
        Tensor output;
        if (_topK == NumExperts && expertBias is null && !_normTopkProb && trace is not { RecordChoices: true })
        {
            output = DenseMixture(flat, probabilities, mode); // [N, H]
            for (var e = 0; e < NumExperts; e++)
            {
                trace?.AddUsage(e, flat.size(0), NumExperts);
            }
        }
        else
        {
            var (topWeights, topIndices) = probabilities.topk(_topK, -1); // [N, k], [N, k]
            if (_normTopkProb)
            {
                topWeights = topWeights / topWeights.sum(-1, keepdim: true); // [N, k]
            }

            if (trace is { RecordChoices: true })
            {
                trace.AddChoices(topIndices, topWeights);
            }

            output = Managed(flat, topIndices, topWeights, trace, mode) // [N, H]
                ?? (flat.size(0) == 1 && trace is null
                    ? SingleToken(flat, topIndices, topWeights, mode) // [1, H]
                    : Dispatch(flat, topIndices, topWeights, trace, mode)); // [N, H]
        }

        return output.view(batch, tokens, hidden).MoveToOuterDisposeScope(); // [B, T, H]
    }

    /// <summary>Every expert on every token (top-k == E, as in expert training): no gather or scatter needed.</summary>
    private Tensor DenseMixture(Tensor flat, Tensor probabilities, LinearMode mode)
    {
        Tensor? output = null;
        for (var e = 0; e < NumExperts; e++)
        {
            var weighted = (_expertArray[e].Compute(flat, mode) * probabilities.narrow(1, e, 1)).to(flat.dtype); // [N, H]
            output = output is null ? zeros_like(flat) + weighted : output + weighted;
        }

        return output!;
    }

    /// <summary>
    /// Whether decode-sized inputs take <see cref="CpuExperts"/> (two kernel passes over all the routed experts and a
    /// managed weighted sum) where it applies, and larger ones <see cref="DispatchRoutes"/>; on by default. Their numbers
    /// are the libtorch dispatch's bit for bit, so this is a switch for tests and measurements only.
    /// </summary>
    internal bool ManagedExperts { get; set; } = true;

    /// <summary>The routed experts through <see cref="CpuExperts"/>, with <see cref="Dispatch"/>'s numbers; null where it does not apply. -> [N, H]</summary>
    private Tensor? Managed(Tensor flat, Tensor topIndices, Tensor topWeights, RouterTrace? trace, LinearMode mode)
    {
        if (!ManagedExperts || flat.size(0) * topIndices.size(1) > CpuExperts.MaxPairs || !ManagedKernels.Usable(flat, topIndices))
        {
            return null; // a prefill-sized batch is not copied out to find that out
        }

        var routes = ExpertRoutes.Of(topIndices, topWeights, NumExperts);
        if (!CpuExperts.Applies(flat, _expertArray, routes, Olmo2Linear.RowInvariant(flat, mode)))
        {
            return null;
        }

        for (var e = 0; e < NumExperts; e++)
        {
            trace?.AddUsage(e, routes.PerExpert[e], NumExperts);
        }

        return CpuExperts.Forward(flat, _expertArray, routes);
    }

    /// <summary>
    /// One token (a decode step) where <see cref="CpuExperts"/> does not apply (another device): its k experts straight away, with <see cref="Dispatch"/>'s arithmetic on the CPU (each
    /// contribution weighted in fp32 and cast, then summed onto zero in fp32 in increasing expert order and cast once, as
    /// index_add_'s CPU kernel does), but without the sort, gathers and scatter, whose dozen small ops cost more than the
    /// arithmetic at one token.
    /// </summary>
    private Tensor SingleToken(Tensor flat, Tensor topIndices, Tensor topWeights, LinearMode mode)
    {
        var experts = GarbageFreeOps.ToArray<long>(topIndices); // [k]
        var weights = GarbageFreeOps.ToArray<float>(topWeights); // [k]
        var order = Enumerable.Range(0, experts.Length).Where(j => !(weights[j] <= 0)).OrderBy(j => experts[j]).ToArray();
        var sums = zeros_like(flat, ScalarType.Float32); // [1, H]
        foreach (var j in order)
        {
            using var scope = NewDisposeScope();
            GarbageFreeOps.AddInto(sums, (_expertArray[experts[j]].Compute(flat, mode) * topWeights.narrow(1, j, 1)).to(flat.dtype)); // [1, H]
        }

        using (sums)
        {
            return sums.to(flat.dtype); // [1, H]
        }
    }

    /// <summary>
    /// Runs each expert on the tokens routed to it. Pairs are sorted by expert so each expert sees one contiguous
    /// slice, its tokens in order; pairs with weight 0 (masked experts) are dropped, which is exact since they would add
    /// 0. On the CPU without autograd, through <see cref="DispatchRoutes"/>, with the same numbers.
    /// </summary>
    private Tensor Dispatch(Tensor flat, Tensor topIndices, Tensor topWeights, RouterTrace? trace, LinearMode mode)
    {
        if (ManagedExperts && ManagedKernels.Usable(flat, topIndices) && flat.dtype is ScalarType.Float32 or ScalarType.BFloat16)
        {
            return DispatchRoutes(flat, topIndices, topWeights, trace, mode);
        }

        var k = topIndices.size(1);
        var pairExpert = topIndices.reshape(-1); // [N*k]
        var pairWeight = topWeights.reshape(-1); // [N*k]
        var routedExpert = pairExpert.masked_fill(pairWeight.le(0), NumExperts); // [N*k], dropped pairs -> E
        var order = routedExpert.sort(0, descending: false, stable: true).Indices; // [N*k]: by expert, each expert's pairs in token order, as ExpertRoutes lays them out (libtorch's silu, for one, computes a tensor's last elements apart, so its rows' order shows in the bits)
        var counts = routedExpert.bincount(null, NumExperts + 1).cpu(); // [E+1]
        var perExpert = GarbageFreeOps.ToArray<long>(counts);
        for (var e = 0; e < NumExperts; e++)
        {
            trace?.AddUsage(e, perExpert[e], NumExperts);
        }

        var routed = perExpert.Take(NumExperts).Sum(); // M
        var output = zeros_like(flat); // [N, H]
        if (routed == 0)
        {
            return output;
        }

        var kept = order.narrow(0, 0, routed); // [M]
        var tokenOfPair = kept.div(k, rounding_mode: RoundingMode.floor); // [M]
        var gathered = flat.index_select(0, tokenOfPair); // [M, H]
        var weights = pairWeight.index_select(0, kept).unsqueeze(1); // [M, 1]
        var results = new List<Tensor>();
        long start = 0;
        for (var e = 0; e < NumExperts; e++)
        {
            if (perExpert[e] == 0)
            {
                continue;
            }

            results.Add(_expertArray[e].Compute(gathered.narrow(0, start, perExpert[e]), mode)); // [count_e, H]
            start += perExpert[e];
        }

        var expertOutputs = results.Count == 1 ? results[0] : cat(results, 0); // [M, H]
        return LibtorchSum(output, expertOutputs, tokenOfPair, weights); // [N, H]
    }

    /// <summary>
    /// The weighted sum in libtorch ops, onto <paramref name="zeros"/> [N, H]: each pair's output [M, H] weighted in fp32
    /// ([M, 1]) and cast to the dtype, then added to its token's row by index_add_, whose CPU kernel sums a bf16 output in
    /// fp32 and rounds once.
    /// </summary>
    private static Tensor LibtorchSum(Tensor zeros, Tensor expertOutputs, Tensor tokenOfPair, Tensor weights) =>
        zeros.index_add_(0, tokenOfPair, (expertOutputs * weights).to(zeros.dtype), 1); // [N, H]

    /// <summary>
    /// Each expert on its rows (null where it has none), in the caller's dispose scope. In bf16, where the products are
    /// libtorch's, the experts run side by side on <see cref="LibtorchLanes"/>, each on a share of the cores, largest
    /// first: a 512-token prefill routes 10-400 rows to an expert, too few for one product to keep two cores busy.
    /// Elsewhere one after another (row-invariant products are the decode kernel's, which has threads of its own).
    /// </summary>
    private Tensor?[] ComputeExperts(Tensor?[] inputs, LinearMode mode)
    {
        var outputs = new Tensor?[NumExperts];
        var routed = Enumerable.Range(0, NumExperts).Where(e => inputs[e] is not null).OrderByDescending(e => inputs[e]!.size(0)).ToArray();
        var lanes = routed.Length > 1 && inputs[routed[0]]!.dtype == ScalarType.BFloat16 && !Olmo2Linear.RowInvariant(inputs[routed[0]]!, mode)
            ? LibtorchLanes.For(routed.Length)
            : 1;
        if (lanes == 1)
        {
            foreach (var e in routed)
            {
                outputs[e] = _expertArray[e].Compute(inputs[e]!, mode); // [count_e, H]
            }

            return outputs;
        }

        try
        {
            LibtorchLanes.Run(routed.Length, lanes, i =>
            {
                var e = routed[i];
                using var laneScope = NewDisposeScope(); // a lane has no scope of its own: its output is handed to the caller's below
                outputs[e] = laneScope.Detach(_expertArray[e].Compute(inputs[e]!, mode)); // [count_e, H]
            });
        }
        finally
        {
            CurrentDisposeScope?.Attach(outputs.OfType<Tensor>().ToArray());
        }

        return outputs;
    }

    /// <summary>
    /// <see cref="Dispatch"/> with the routes in managed memory (<see cref="ExpertRoutes"/>: pairs by expert, then by
    /// token) and the weighted sum in managed code (<see cref="CpuExperts.Sum"/>), which computes the dispatch's
    /// numbers without its concatenation, fp32 products, cast and scatter, and their fresh buffers: this machine's page
    /// faults made those 36 ms of a 512-token bf16 forward of the forward benchmark (median of 20; 7 ms at the fastest).
    /// Its MoE layers then took 358 ms against 397 (medians of 20 alternating forwards), with 3.9K page faults a forward
    /// against 9.0K.
    /// </summary>
    private Tensor DispatchRoutes(Tensor flat, Tensor topIndices, Tensor topWeights, RouterTrace? trace, LinearMode mode)
    {
        var routes = ExpertRoutes.Of(topIndices, topWeights, NumExperts);
        for (var e = 0; e < NumExperts; e++)
        {
            trace?.AddUsage(e, routes.PerExpert[e], NumExperts);
        }

        using var scope = NewDisposeScope();
        using var tokenOfPair = tensor(Array.ConvertAll(routes.Token, t => (long)t)); // [M] int64, as index_add_ takes
        var gathered = flat.index_select(0, tokenOfPair); // [M, H]
        var inputs = new Tensor?[NumExperts];
        var start = 0L;
        for (var e = 0; e < NumExperts; e++)
        {
            if (routes.PerExpert[e] > 0)
            {
                inputs[e] = gathered.narrow(0, start, routes.PerExpert[e]); // [count_e, H]
                start += routes.PerExpert[e];
            }
        }

        var outputs = ComputeExperts(inputs, mode); // [count_e, H] each

        if (!CpuExperts.SumApplies(flat, outputs, routes))
        {
            var expertOutputs = cat(outputs.OfType<Tensor>().ToArray(), 0); // [M, H]; outputs the managed sum cannot read
            return LibtorchSum(zeros_like(flat), expertOutputs, tokenOfPair, tensor(routes.Weight).unsqueeze(1)).MoveToOuterDisposeScope(); // [N, H]
        }

        return CpuExperts.Sum(routes, outputs, (int)flat.size(0), (int)flat.size(1), flat.dtype).MoveToOuterDisposeScope(); // [N, H]
    }
}
