using System.Diagnostics;
using System.Text.Json.Nodes;
using FlexOlmo.Composition;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Compose of a checkpoint of at least 2 GiB (bf16 anchor of hidden 2048, 8 layers, intermediate 5632, vocab 50304,
/// plus two experts) against `cp` of the same bytes in the same run (both timed up to `sync`, best of 3), with the
/// process's peak memory. Goal: at most 1.5x cp's time, peak memory under 1 GiB.
/// </summary>
internal static class ComposeBenchmark
{
    private static readonly string[] ExpertNames = ["news", "science"];

    private const int Hidden = 2048;
    internal const int Layers = 8;
    private const int Intermediate = 5632;
    private const int Vocab = 50304;

    public static async Task RunAsync(string? json)
    {
        var report = new Report("compose");
        var root = Directory.CreateTempSubdirectory("flexolmo-compose-bench-").FullName;
        try
        {
            var anchor = MakeAnchor(Path.Combine(root, "anchor"));
            var experts = ExpertNames.Select((name, i) => MakeExpert(Path.Combine(root, name), name, anchor, i + 2)).ToArray();
            var recipe = Path.Combine(root, "recipe.yaml");
            File.WriteAllText(recipe, $"name: bench\nanchor: {{ source: {Path.Combine(root, "anchor")} }}\nexperts:\n" + string.Join("", experts.Select(e => $"  - source: {e}\n")) + "experts_per_token: 2\ndtype: bfloat16\noutput: { shard_size: 1GB }\n");
            var sources = Directory.EnumerateFiles(Path.Combine(root, "anchor", "model"), "*.safetensors").Concat(experts.Select(e => Path.Combine(e, ExpertTensorNames.WeightsFile))).ToList();
            var inputBytes = sources.Sum(f => new FileInfo(f).Length);
            report.Note($"sources {inputBytes / (double)(1L << 30):0.00} GiB (anchor + 2 experts, bf16); page cache warm for every contender");

            var cp = Best(() =>
            {
                var target = Directory.CreateDirectory(Path.Combine(root, "cp-" + Guid.NewGuid().ToString("N"))).FullName;
                for (var i = 0; i < sources.Count; i++)
                {
                    Run("cp", [sources[i], Path.Combine(target, $"{i}-{Path.GetFileName(sources[i])}")]);
                }

                return target;
            });
            report.Add(new() { ["operation"] = "cp (best of 3)", ["seconds"] = cp, ["ratio_to_cp"] = 1.0 });

            long written = 0;
            var compose = Best(() =>
            {
                var target = Path.Combine(root, "composed-" + Guid.NewGuid().ToString("N"));
                written = Composer.ComposeAsync(Recipe.Load(recipe), target, null, null, CancellationToken.None).GetAwaiter().GetResult().Bytes;
                return target;
            });
            using var process = Process.GetCurrentProcess();
            report.Add(new()
            {
                ["operation"] = "compose (best of 3)",
                ["seconds"] = compose,
                ["ratio_to_cp"] = compose / cp,
                ["composed_gib"] = written / (double)(1L << 30),
                ["peak_working_set_mib"] = process.PeakWorkingSet64 / (double)(1 << 20),
            });
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }

        report.Save(json);
        await Task.CompletedTask;
    }

    internal static double Best(Func<string> operation) => Enumerable.Range(0, 3).Min(_ => Timed(operation));

    /// <summary>Seconds from a synced disk to the operation's output synced, after which the output is deleted.</summary>
    internal static double Timed(Func<string> operation)
    {
        Run("sync", []);
        var watch = Stopwatch.StartNew();
        var made = operation();
        Run("sync", []);
        var seconds = watch.Elapsed.TotalSeconds;
        Directory.Delete(made, recursive: true);
        return seconds;
    }

    internal static AnchorPackage MakeAnchor(string folder, int layers = Layers)
    {
        var model = Directory.CreateDirectory(Path.Combine(folder, AnchorPackage.ModelFolderName)).FullName;
        var random = new Random(1);
        var tensors = new List<TensorToWrite> { Random(TensorNames.EmbedTokens, [Vocab, Hidden], random) };
        for (var l = 0; l < layers; l++)
        {
            foreach (var p in new[] { "q_proj", "k_proj", "v_proj", "o_proj" })
            {
                tensors.Add(Random($"model.layers.{l}.self_attn.{p}.weight", [Hidden, Hidden], random));
            }

            tensors.Add(Random($"model.layers.{l}.self_attn.q_norm.weight", [Hidden], random));
            tensors.Add(Random($"model.layers.{l}.self_attn.k_norm.weight", [Hidden], random));
            tensors.Add(Random($"model.layers.{l}.post_attention_layernorm.weight", [Hidden], random));
            tensors.Add(Random($"model.layers.{l}.post_feedforward_layernorm.weight", [Hidden], random));
            tensors.Add(Random(TensorNames.DenseMlp(l, "gate_proj"), [Intermediate, Hidden], random));
            tensors.Add(Random(TensorNames.DenseMlp(l, "up_proj"), [Intermediate, Hidden], random));
            tensors.Add(Random(TensorNames.DenseMlp(l, "down_proj"), [Hidden, Intermediate], random));
        }

        tensors.Add(Random(TensorNames.FinalNorm, [Hidden], random));
        tensors.Add(Random(TensorNames.LmHead, [Vocab, Hidden], random));
        SafetensorsWriter.WriteCheckpoint(model, tensors, 5_000_000_000);
        var config = new JsonObject
        {
            ["model_type"] = "olmo2",
            ["vocab_size"] = Vocab,
            ["hidden_size"] = Hidden,
            ["intermediate_size"] = Intermediate,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = 16,
            ["rms_norm_eps"] = 1e-6,
            ["rope_theta"] = 500000.0,
            ["eos_token_id"] = 0,
            ["dtype"] = "bfloat16",
        };
        File.WriteAllText(Path.Combine(model, "config.json"), config.ToJsonString());
        return SealAnchor(folder, new Architecture("olmo2", Hidden, Intermediate, layers, Vocab));
    }

    /// <summary>
    /// Makes an anchor package of the dense model already in <paramref name="folder"/>/model: a zero r_pub and an
    /// unsigned manifest with the model's fingerprint.
    /// </summary>
    internal static AnchorPackage SealAnchor(string folder, Architecture architecture)
    {
        var model = Path.Combine(folder, AnchorPackage.ModelFolderName);
        var hidden = architecture.HiddenSize;
        RouterEmbeddingFile.Write(Path.Combine(folder, AnchorPackage.RouterEmbeddingFile), new float[hidden], new RouterEmbeddingProvenance("random", hidden));
        var files = Directory.EnumerateFiles(model).Select(f => FileDigest.Compute(folder, $"model/{Path.GetFileName(f)}")).Append(FileDigest.Compute(folder, AnchorPackage.RouterEmbeddingFile)).ToList();
        var manifest = new AnchorManifest("bench-anchor", TensorFingerprint.Compute(model), new AnchorModel("model", architecture),
            new AnchorRouterEmbedding(AnchorPackage.RouterEmbeddingFile, new RouterEmbeddingProvenance("random", hidden)), files, DateTimeOffset.UtcNow, ToolInfo.Current);
        SignedDocument<AnchorManifest>.Create(manifest, SchemaValidator.AnchorManifest, null).Save(Path.Combine(folder, AnchorManifest.FileName));
        return AnchorPackage.Open(folder);
    }

    internal static string MakeExpert(string folder, string name, AnchorPackage anchor, int seed, int layers = Layers) =>
        MakeExpert(folder, name, anchor, seed, new Architecture("olmo2", Hidden, Intermediate, layers, Vocab));

    /// <summary>An unsigned expert package of random bf16 weights for an anchor of that architecture.</summary>
    internal static string MakeExpert(string folder, string name, AnchorPackage anchor, int seed, Architecture architecture)
    {
        var (hidden, intermediate, layers) = (architecture.HiddenSize, architecture.IntermediateSize, architecture.NumHiddenLayers);
        Directory.CreateDirectory(folder);
        var random = new Random(seed);
        var tensors = new List<TensorToWrite>();
        for (var l = 0; l < layers; l++)
        {
            tensors.Add(Random(ExpertTensorNames.Ffn(l, "gate_proj"), [intermediate, hidden], random));
            tensors.Add(Random(ExpertTensorNames.Ffn(l, "up_proj"), [intermediate, hidden], random));
            tensors.Add(Random(ExpertTensorNames.Ffn(l, "down_proj"), [hidden, intermediate], random));
            tensors.Add(Random(ExpertTensorNames.RouterEmbedding(l), [hidden], random));
            tensors.Add(new TensorToWrite(ExpertTensorNames.RouterBias(l), SafetensorsDType.F32, [1], s => s.Write(new byte[4])));
        }

        SafetensorsWriter.WriteFile(Path.Combine(folder, ExpertTensorNames.WeightsFile), tensors);
        var manifest = new ExpertManifest(name, "1.0.0", "bench", "Apache-2.0", new AnchorReference(anchor.Fingerprint, "bench-anchor"), architecture,
            new RouterEmbeddingProvenance("random", hidden), new TrainingRecord(0, 0, 1, 1, 1e-3, 0, 0, "bfloat16"),
            [FileDigest.Compute(folder, ExpertTensorNames.WeightsFile)], DateTimeOffset.UtcNow, ToolInfo.Current);
        SignedDocument<ExpertManifest>.Create(manifest, SchemaValidator.ExpertManifest, null).Save(Path.Combine(folder, ExpertManifest.FileName));
        return folder;
    }

    /// <summary>A bf16 tensor of random finite values (small exponents), written in 8 MiB pieces.</summary>
    private static TensorToWrite Random(string name, long[] shape, Random random) => new(name, SafetensorsDType.BF16, shape, stream =>
    {
        var total = shape.Aggregate(1L, (a, b) => a * b) * 2;
        var chunk = new byte[8 << 20];
        for (long done = 0; done < total; done += chunk.Length)
        {
            random.NextBytes(chunk);
            for (var i = 1; i < chunk.Length; i += 2)
            {
                chunk[i] = (byte)(0x3C | (chunk[i] & 0x81)); // exponent near 1: finite, small
            }

            stream.Write(chunk, 0, (int)Math.Min(chunk.Length, total - done));
        }
    });

    internal static void Run(string program, string[] arguments)
    {
        using var process = Process.Start(program, arguments);
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} exited with {process.ExitCode}");
        }
    }
}
