using System.Text.Json.Nodes;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Packages;
using FlexOlmo.Training;
using FlexOlmo.Training.Anchors;
using FlexOlmo.Training.Experts;
using FlexOlmo.Training.Pretraining;
using FlexOlmo.Training.Tokenizers;

namespace FlexOlmo.Testing;

/// <summary>
/// Built once for the training tests: synthetic public and domain corpora, a small BPE tokenizer, a tiny dense
/// OLMo-2 pretrained on the public text, and an anchor prepared from it.
/// </summary>
public sealed class TrainingFixture : IDisposable
{
    public TrainingFixture()
    {
        Core.Native.TorchNative.Initialize();
        Root = new TempDirectory("training");
        TokenCache = Root.Sub("token-cache");
        var data = Root.Sub("data");
        PublicData = SyntheticCorpus.WriteJsonl(Path.Combine(data, "public.jsonl"), SyntheticCorpus.Public(300, 1));
        CountingData = SyntheticCorpus.WriteJsonl(Path.Combine(data, "counting.jsonl"), SyntheticCorpus.Counting(200, 2));
        ChemistryData = SyntheticCorpus.WriteJsonl(Path.Combine(data, "chemistry.jsonl"), SyntheticCorpus.Chemistry(200, 3));
        TokenizerPath = Path.Combine(Root.Path, "tokenizer.json");
        BpeTrainer.Train(DataFiles.Expand([PublicData, CountingData, ChemistryData]), 320, ["<|endoftext|>", "<|pad|>"], TokenizerPath);
        Tokenizer = HfJsonTokenizer.Load(TokenizerPath);
        var config = new JsonObject
        {
            ["model_type"] = "olmo2",
            ["vocab_size"] = 336,
            ["hidden_size"] = 64,
            ["intermediate_size"] = 128,
            ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = 4,
            ["num_key_value_heads"] = 4,
            ["max_position_embeddings"] = 128,
            ["rms_norm_eps"] = 1e-6,
            ["rope_theta"] = 10000.0,
            ["eos_token_id"] = 320,
            ["pad_token_id"] = 321,
        };
        ConfigPath = Path.Combine(Root.Path, "config.json");
        File.WriteAllText(ConfigPath, config.ToJsonString());
        ModelFolder = Path.Combine(Root.Path, "pretrained");
        Pretrainer.Train(
            new PretrainRequest
            {
                Config = ConfigPath,
                Data = [PublicData],
                Out = ModelFolder,
                Tokenizer = TokenizerPath,
                Settings = new TrainingSettings { SeqLen = 32, BatchTokens = 256, MicroBatch = 8, Steps = 60, Lr = 3e-3, WeightDecay = 0.1, Seed = 1, CheckpointEvery = 0 },
                TokenCache = TokenCache,
            },
            null,
            null,
            CancellationToken.None);
        AnchorFolder = Path.Combine(Root.Path, "anchor");
        Anchor = AnchorBuilder.Prepare(
            new AnchorRequest { Model = ModelFolder, Out = AnchorFolder, Name = "tiny-anchor", PublicData = [PublicData], Samples = 50, SeqLen = 32, TokenCache = TokenCache },
            null,
            CancellationToken.None);
    }

    public TempDirectory Root { get; }

    public string TokenCache { get; }

    public string PublicData { get; }

    public string CountingData { get; }

    public string ChemistryData { get; }

    public string TokenizerPath { get; }

    public HfJsonTokenizer Tokenizer { get; }

    public string ConfigPath { get; }

    public string ModelFolder { get; }

    public string AnchorFolder { get; }

    public AnchorPackage Anchor { get; }

    /// <summary>Trains an expert on one of the synthetic domains into a new folder under the fixture's root.</summary>
    public FlexOlmo.Packages.ExpertPackage TrainExpert(string name, string data, long steps = 30, string version = "1.0.0")
    {
        var result = ExpertTrainer.Train(
            new ExpertTrainingRequest
            {
                Anchor = AnchorFolder,
                Data = [data],
                Name = name,
                Version = version,
                Out = Path.Combine(Root.Path, "experts", $"{name}-{version}-{Guid.NewGuid():N}"),
                Owner = $"{name} owner",
                License = "Apache-2.0",
                Samples = 50,
                Settings = SmallSettings(steps),
                TokenCache = TokenCache,
            },
            null,
            null,
            CancellationToken.None);
        return result.Package!;
    }

    /// <summary>Settings small enough for a test: 32-token instances, 8 per step.</summary>
    public static TrainingSettings SmallSettings(long steps) => new()
    {
        SeqLen = 32,
        BatchTokens = 256,
        MicroBatch = 4,
        Steps = steps,
        Lr = 3e-3,
        Warmup = 2,
        Seed = 5,
        ValidationFraction = 0.1,
        CheckpointEvery = 0,
    };

    public void Dispose() => Root.Dispose();
}
