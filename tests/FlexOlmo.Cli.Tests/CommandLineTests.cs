using FlexOlmo.Testing;

namespace FlexOlmo.Cli.Tests;

public sealed class CommandLineTests
{
    [Fact]
    public async Task Help_Root_ListsEveryUserJob()
    {
        var run = await CliRun.RunAsync("--help");

        Assert.Equal(0, run.ExitCode);
        foreach (var command in new[] { "demo", "train-expert", "publish", "compose", "serve", "eval", "pretrain", "prepare-anchor", "keys", "revoke", "generate" })
        {
            Assert.Contains(command, run.Output, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("generate", "--prompt-ids", "3,4")]
    [InlineData("logits", "--input-ids", "ids.json")]
    public async Task UnknownExpert_IsRefusedBeforeAnyWeightLoads(string command, string inputOption, string input)
    {
        // The golden model's config without its weights: the unknown expert must be the error, not the missing weights.
        using var folder = new TempDirectory("cli-no-weights");
        var model = Path.Combine(folder.Path, "model");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(TestPaths.HfReference, "flexolmo-tiny", "config.json"), Path.Combine(model, "config.json"));
        File.WriteAllText(Path.Combine(folder.Path, "ids.json"), """{"input_ids": [[3, 4]]}""");
        string[] args = [command, "--model", model, inputOption, input == "ids.json" ? Path.Combine(folder.Path, input) : input, "--exclude-experts", "nosuch"];
        if (command == "logits")
        {
            args = [.. args, "--out", Path.Combine(folder.Path, "out.json")];
        }

        var run = await CliRun.RunAsync(args);

        Assert.True(run.ExitCode == 1, run.ToString()); // a user error, not an internal one (70)
        Assert.Contains("nosuch", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("safetensors", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReleasedModels_TheReadmeWalkthrough_DecomposeImportComposeExportGenerate()
    {
        // The golden 4-expert model transformers wrote stands in for FlexOlmo-7x7B-1T, one of its experts for a Flex-DOMAIN-2x7B-1T.
        using var folder = new TempDirectory("cli-released");
        string At(string name) => Path.Combine(folder.Path, name);
        async Task Ok(params string[] args)
        {
            var run = await CliRun.RunAsync(args);
            Assert.True(run.ExitCode == 0, $"{string.Join(' ', args)}\n{run}");
        }

        await Ok("decompose", "--model", Path.Combine(TestPaths.HfReference, "flexolmo-tiny"), "--out", At("parts"));
        File.WriteAllText(At("two.yaml"), $"name: flex-math-2x\nanchor: {{ source: {At("parts/anchor")} }}\nexperts:\n  - source: {At("parts/experts/expert-2")}\n");
        await Ok("compose", "--recipe", At("two.yaml"), "--out", At("Flex-math-2x"));
        File.Delete(At("Flex-math-2x/flexolmo.json")); // released checkpoints have no sidecar

        await Ok("prepare-anchor", "--model", At("parts/anchor/model"), "--router-embedding-from", At("Flex-math-2x"), "--out", At("flex-public"), "--name", "flex-public");
        await Ok("import-expert", "--model", At("Flex-math-2x"), "--anchor", At("flex-public"), "--name", "math", "--owner", "allenai", "--license", "Apache-2.0", "--out", At("math"));
        File.WriteAllText(At("mine.yaml"), $"name: mine\nanchor: {{ source: {At("flex-public")} }}\nexperts:\n  - source: {At("math")}\n  - source: {At("parts/experts/expert-1")}\nexperts_per_token: 2\n");
        await Ok("compose", "--recipe", At("mine.yaml"), "--out", At("mine"));
        await Ok("generate", "--model", At("mine"), "--prompt-ids", "3,4", "--max-new-tokens", "2", "--exclude-experts", "math");
        await Ok("export-expert", At("math"), "--anchor", At("flex-public"), "--out", At("math-hf"));

        Assert.Equal(FlexOlmo.Packages.TensorFingerprint.Compute(At("Flex-math-2x")), FlexOlmo.Packages.TensorFingerprint.Compute(At("math-hf")));
        var refused = await CliRun.RunAsync("import-expert", "--model", Path.Combine(TestPaths.HfReference, "flexolmo-tiny"), "--anchor", At("flex-public"), "--name", "x", "--out", At("x"));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("flexolmo decompose", refused.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Eval_WithoutRequiredOptions_NamesThem()
    {
        var run = await CliRun.RunAsync("eval");

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--model", run.Error, StringComparison.Ordinal);
        Assert.Contains("--data", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_MissingFolder_ExitsOneWithOneLineNamingIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"flexolmo-missing-{Guid.NewGuid():N}");

        var run = await CliRun.RunAsync("inspect", missing);

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("error: ", run.Error, StringComparison.Ordinal);
        Assert.Contains(missing, run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_ForeignNonEmptyFolder_IsLeftUntouched()
    {
        using var folder = new TempDirectory("demo-foreign");
        var precious = Path.Combine(folder.Path, "thesis.txt");
        File.WriteAllText(precious, "do not delete");

        var run = await CliRun.RunAsync("demo", "--quick", "--work", folder.Path);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("no demo made it", run.Error, StringComparison.Ordinal);
        Assert.Equal("do not delete", File.ReadAllText(precious));
    }

    [Fact]
    public async Task Keys_Create_WritesKeyPairAndPrintsFingerprint()
    {
        using var folder = new TempDirectory("cli-keys");
        var key = Path.Combine(folder.Path, "owner.key");

        var run = await CliRun.RunAsync("keys", "create", "--out", key);

        Assert.Equal(0, run.ExitCode);
        Assert.True(File.Exists(key) && File.Exists(key + ".pub"), run.ToString());
        Assert.Contains("fingerprint sha256:", run.Output, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        }
    }

    [Fact]
    public async Task Eval_OfTokenShards_NeedsNoTokenizer()
    {
        using var folder = new TempDirectory("eval-shards");
        var shard = Path.Combine(folder.Path, "held-out.npy");
        var ids = Enumerable.Range(0, 600).Select(i => (ushort)(3 + (i * 7 % 500))).ToArray();
        var header = "{'descr': '<u2', 'fortran_order': False, 'shape': (600,), }";
        header += new string(' ', 63 - ((10 + header.Length) % 64)) + "\n";
        File.WriteAllBytes(shard, [0x93, .. "NUMPY"u8, 1, 0, (byte)header.Length, 0, .. System.Text.Encoding.ASCII.GetBytes(header), .. ids.SelectMany(BitConverter.GetBytes)]);

        var run = await CliRun.RunAsync("eval", "--model", TestPaths.Fixture("olmo2-tiny"), "--data", $"shards={shard}", "--seq-len", "32", "--max-tokens", "256", "--out", Path.Combine(folder.Path, "r"));

        Assert.True(run.ExitCode == 0, run.ToString()); // olmo2-tiny has no tokenizer.json and no dolma2 vocabulary
        Assert.Contains("perplexity", run.Error, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(folder.Path, "r.json")));
    }
}
