using System.Diagnostics;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// Every command, fed hostile values for each option and hostile files for each input it reads, ends with exit code 0
/// (the value happened to be usable), 1 (a user error) or 2 (a command line that does not parse), and on failure with
/// one "error:" line and no stack trace: never an unhandled exception, never "internal error". The sweep runs the
/// command tree in-process exactly as the executable does; the cases the issue names also run as the real
/// executable, whose exit code must not be 134.
/// </summary>
public sealed class HostileInputSweepTests(HostileWorld world) : IClassFixture<HostileWorld>
{
    private static readonly string[] BadPaths = ["@nonexistent", "@dir", "@garbage.bin", "@empty.txt", "@notjson.json", "@array.json", "@text.txt"];
    private static readonly string[] Models =
    [
        "@m-noconfig", "@m-badconfig", "@m-huge", "@m-hugevocab", "@m-bigbutbounded", "@m-strnum", "@m-ropetype", "@m-overflow", "@m-array", "@m-noweights", "@m-badweights",
        "@m-headerlie", "@m-offsetlie", "@m-mismatch", "@m-badtok", "@m-badtok2", "@m-badindex", "@m-badindex2", "@garbage.bin", "@dir", "@nonexistent", "@anchor", "@exp",
        "@garbage-pkg", "@garbage-anchor",
    ];

    private static readonly string[] Ints = ["-1", "0", "2147483648", "99999999999999999999", "x", "1e3"];
    private static readonly string[] Doubles = ["nan", "-inf", "inf", "-1", "1e400", "x"];
    private static readonly string[] Texts = ["", "a\nb", "../../etc", "\u0007", new string('x', 5000), "cuda:99", "float8"];
    private static readonly string[] Data =
    [
        "@odd.bin", "@bigids.bin", "@bad-shape.npy", "@bad-dtype.npy", "@twod.npy", "@bigendian.npy", "@notgzip.jsonl.gz", "@truncated.jsonl.gz", "@badline.jsonl",
        "@wrongtype.jsonl", "@empty.txt", "@garbage.bin", "@dir", "@nonexistent", "@*.nothing",
    ];

    public static TheoryData<string, string[]> Cases()
    {
        var cases = new TheoryData<string, string[]>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(params string[] args)
        {
            if (seen.Add(string.Join('\0', args))) // the same command line from two loops runs once
            {
                cases.Add(Label(args), args);
            }
        }

        foreach (var model in Models)
        {
            Add("inspect", model);
            Add("logits", "--model", model, "--input-ids", "@ids-ok.json", "--out", "@out");
            Add("generate", "--model", model, "--prompt-ids", "3,4", "--max-new-tokens", "2");
            Add("eval", "--model", model, "--data", "a=@tokens.bin", "--out", "@out", "--max-tokens", "64", "--seq-len", "16");
            Add("prepare-anchor", "--model", model, "--router-embedding", "@vec.json", "--out", "@out");
            Add("tokenize", "--model", model, "--text", "hi");
            Add("serve", "--model", model, "--port", "0");
            Add("tune-router", "--model", model, "--data", "@tokens.bin", "--out", "@out", "--steps", "1", "--seq-len", "16", "--batch-tokens", "32");
            Add("import-expert", "--model", model, "--anchor", "@anchor", "--name", "x", "--out", "@out");
            Add("import-expert", "--model", "@golden/flexolmo-tiny", "--anchor", model, "--name", "x", "--out", "@out");
            Add("export-expert", model, "--anchor", "@anchor", "--out", "@out");
            Add("export-expert", "@exp", "--anchor", model, "--out", "@out");
            Add("decompose", "--model", model, "--out", "@out");
            Add("prepare-anchor", "--model", "@golden/olmo2-tiny", "--router-embedding-from", model, "--out", "@out");
            Add("audit-extraction", "--model", model, "--anchor", "@anchor", "--data", "@text.txt", "--out", "@out", "--prefix", "4", "--continuation", "4", "--samples", "1", "--documents", "1");
            Add("audit-extraction", "--model", "@exp", "--anchor", model, "--data", "@text.txt", "--out", "@out", "--prefix", "4", "--continuation", "4", "--samples", "1", "--documents", "1");
        }

        foreach (var model in Models)
        {
            Add("soup", "--model", model, "--out", "@out");
        }

        foreach (var weight in new[] { "x", "public", "=1", "public=nan", "public=-1", "public=0", "nobody=1", "public=1e400", "public=1 public=2" })
        {
            Add(["soup", "--model", "@golden/flexolmo-tiny", "--out", "@out", "--weights", .. weight.Split(' ')]);
        }

        foreach (var target in new[] { "@anchor", "@garbage.bin", "/proc/x" })
        {
            Add("soup", "--model", "@golden/flexolmo-tiny", "--out", target);
            Add("select-proxy", "--anchor", "@anchor", "--data", "@text.txt", "--public-data", "@text.txt", "--out", target);
            Add("study", "--tiny", "--work", target);
        }

        foreach (var anchor in new[] { "@garbage-anchor", "@garbage-pkg", "@dir", "@nonexistent", "@m-badtok", "@m-badconfig", "@garbage.bin" })
        {
            Add("select-proxy", "--anchor", anchor, "--data", "@text.txt", "--public-data", "@text.txt", "--out", "@out");
        }

        foreach (var data in Data.Concat(BadPaths))
        {
            Add("select-proxy", "--anchor", "@anchor", "--data", data, "--public-data", "@text.txt", "--out", "@out");
            Add("select-proxy", "--anchor", "@anchor", "--data", "@text.txt", "--public-data", data, "--out", "@out");
        }

        foreach (var value in Doubles.Append("0").Append("2"))
        {
            Add("select-proxy", "--anchor", "@anchor", "--data", "@text.txt", "--public-data", "@text.txt", "--out", "@out", "--fraction", value);
        }

        foreach (var corpus in new[] { "@dir", "@nonexistent", "@garbage.bin" })
        {
            Add("study", "--tiny", "--work", "@out", "--corpus", corpus);
        }

        foreach (var size in new[] { "0", "x", "-1", "5XB", "1e3", "2TB", "0.5B", "" })
        {
            Add("decompose", "--model", "@golden/flexolmo-tiny", "--out", "@out", "--shard-size", size);
            Add("export-expert", "@exp", "--anchor", "@anchor", "--out", "@out", "--shard-size", size);
        }

        foreach (var (option, value) in Pairs(["--name", "--version", "--owner", "--license", "--description"], Texts))
        {
            Add("import-expert", "--model", "@golden/flexolmo-tiny", "--anchor", "@anchor", "--name", "x", "--out", "@out", option, value);
        }

        foreach (var target in new[] { "@anchor", "@exp", "@garbage.bin", "@dir", "/proc/x" })
        {
            Add("decompose", "--model", "@golden/flexolmo-tiny", "--out", target);
            Add("export-expert", "@exp", "--anchor", "@anchor", "--out", target);
        }

        foreach (var ids in new[] { "@ids-str.json", "@ids-ragged.json", "@ids-neg.json", "@ids-big.json", "@ids-float.json", "@ids-huge.json", "@ids-empty.json", "@ids-emptyrow.json", "@ids-long.json" }.Concat(BadPaths))
        {
            Add("logits", "--model", "@golden/olmo2-tiny", "--input-ids", ids, "--out", "@out");
        }

        foreach (var (option, value) in Pairs(["--exclude-experts", "--include-experts"], ["99", "-1", "x", "1,1", ",", "0,1,2,3,4", "0"]))
        {
            Add("logits", "--model", "@golden/flexolmo-tiny", "--input-ids", "@ids-ok.json", "--out", "@out", option, value);
        }

        foreach (var (option, value) in Pairs(["--device", "--dtype"], Texts))
        {
            Add("logits", "--model", "@golden/olmo2-tiny", "--input-ids", "@ids-ok.json", "--out", "@out", option, value);
        }

        foreach (var (option, values) in new (string, string[])[] { ("--max-new-tokens", Ints), ("--temperature", Doubles), ("--top-p", Doubles), ("--top-k", Ints), ("--seed", Ints), ("--prompt-ids", ["x", "-1", "99999", "1,,2", "1e3"]) })
        {
            foreach (var value in values)
            {
                Add(["generate", "--model", "@golden/olmo2-tiny", "--prompt-ids", "3,4", .. option == "--max-new-tokens" ? Array.Empty<string>() : ["--max-new-tokens", "2"], option, value]);
            }
        }

        foreach (var value in BadPaths)
        {
            Add("tokenize", "--tokenizer", value, "--text", "x");
        }

        foreach (var data in Data)
        {
            Add("train-tokenizer", "--data", data, "--out", "@out", "--vocab-size", "300");
        }

        foreach (var value in Ints)
        {
            Add("train-tokenizer", "--data", "@text.txt", "--out", "@out", "--vocab-size", value);
        }

        string[] TrainExpert(string option, string value)
        {
            string[] args = ["train-expert", "--anchor", "@anchor", "--data", "@tokens.bin", "--name", "e", "--owner", "me", "--out", "@out", "--steps", "1", "--seq-len", "16", "--batch-tokens", "32", "--router-embedding", "@vec.json"];
            var at = Array.IndexOf(args, option);
            return at > 0 ? [.. args[..(at + 1)], value, .. args[(at + 2)..]] : [.. args, option, value];
        }

        foreach (var data in Data)
        {
            Add(TrainExpert("--data", data));
        }

        foreach (var anchor in new[] { "@garbage-anchor", "@garbage-pkg", "@m-badconfig", "@dir", "@nonexistent", "@exp", "@golden/olmo2-tiny" })
        {
            Add(TrainExpert("--anchor", anchor));
        }

        foreach (var (option, value) in Pairs(["--seq-len", "--batch-tokens", "--micro-batch", "--warmup", "--checkpoint-every", "--samples"], Ints))
        {
            Add(TrainExpert(option, value));
        }

        foreach (var (option, value) in Pairs(["--steps", "--tokens"], ["-1", "0", "x", "1e3"]))
        {
            Add(TrainExpert(option, value));
        }

        foreach (var (option, value) in Pairs(["--lr", "--weight-decay", "--val-fraction", "--router-z-loss", "--logit-z-loss", "--router-lr-scale"], Doubles))
        {
            Add(TrainExpert(option, value));
        }

        foreach (var (option, value) in Pairs(["--name", "--version", "--owner", "--license", "--description", "--device", "--dtype"], Texts))
        {
            Add(TrainExpert(option, value));
        }

        foreach (var value in BadPaths.Append("@bad-shape.npy").Append("@m-badweights/model.safetensors"))
        {
            Add(TrainExpert("--router-embedding", value));
        }

        foreach (var value in new[] { "x", "uint8" })
        {
            Add(TrainExpert("--token-dtype", value));
        }

        foreach (var value in new[] { "x", "", "NO-BIAS" })
        {
            Add(TrainExpert("--ablation", value));
        }

        foreach (var value in new[] { "@anchor", "@anchor/model", "@exp", "/proc/x", "@garbage.bin" })
        {
            Add(TrainExpert("--out", value));
        }

        foreach (var config in new[] { "@m-badconfig/config.json", "@garbage.bin", "@dir", "@nonexistent", "@m-huge/config.json", "@m-mismatch/config.json" })
        {
            Add("pretrain", "--config", config, "--data", "@tokens.bin", "--out", "@out", "--steps", "1", "--seq-len", "16", "--batch-tokens", "32");
            Add("init-model", "--config", config, "--out", "@out");
        }

        foreach (var (option, value) in Pairs(["--preset", "--dtype", "--seed", "--shard-size"], ["", "x", "-1", "0", "99999999999999999999", "float64", "1KB"]))
        {
            Add(["init-model", .. option == "--preset" ? Array.Empty<string>() : ["--preset", "demo"], option, value, "--out", "@out"]);
        }

        foreach (var target in new[] { "@anchor", "@exp", "/proc/x", "@garbage.bin", "@dir" })
        {
            Add("init-model", "--preset", "demo", "--out", target);
        }

        Add("pretrain", "--preset", "olmo9", "--data", "@tokens.bin", "--out", "@out", "--steps", "1");
        Add("pretrain", "--preset", "demo", "--config", "@golden/olmo2-tiny", "--data", "@tokens.bin", "--out", "@out", "--steps", "1");

        foreach (var data in Data)
        {
            Add("pretrain", "--config", "@golden/olmo2-tiny", "--data", data, "--out", "@out", "--steps", "1", "--seq-len", "16", "--batch-tokens", "32");
            Add("prepare-anchor", "--model", "@golden/olmo2-tiny", "--public-data", data, "--out", "@out", "--seq-len", "16", "--samples", "4");
            Add("embed-domain", "--anchor", "@anchor", "--data", data, "--out", "@out", "--seq-len", "16", "--samples", "4");
            Add("tune-router", "--model", "@golden/flexolmo-tiny", "--data", data, "--out", "@out", "--steps", "1", "--seq-len", "16", "--batch-tokens", "32");
            Add("eval", "--model", "@golden/olmo2-tiny", "--data", $"a={data}", "--out", "@out", "--max-tokens", "64", "--seq-len", "16");
            Add("audit-extraction", "--model", "@exp", "--anchor", "@anchor", "--data", data, "--out", "@out", "--prefix", "4", "--continuation", "4", "--samples", "1", "--documents", "1");
        }

        foreach (var (option, value) in Pairs(["--prefix", "--continuation", "--samples", "--documents"], Ints).Concat(Pairs(["--threshold", "--temperature"], Doubles)))
        {
            Add("audit-extraction", "--model", "@exp", "--anchor", "@anchor", "--data", "@text.txt", "--out", "@out", "--samples", "1", "--documents", "1", option, value);
        }

        foreach (var value in BadPaths)
        {
            Add("pretrain", "--config", "@golden/olmo2-tiny", "--data", "@text.txt", "--out", "@out", "--steps", "1", "--seq-len", "16", "--batch-tokens", "32", "--tokenizer", value);
            Add("prepare-anchor", "--model", "@golden/olmo2-tiny", "--router-embedding", value, "--out", "@out");
            Add("embed-domain", "--anchor", "@anchor", "--vector", value, "--out", "@out");
            Add("keys", "create", "--out", value);
            Add("publish", value, "--registry", "@reg");
            Add("publish", "@exp", "--registry", "@out", "--sign-key", value);
            Add("publish", "@exp", "--registry", "@out", "--audit", value);
            Add("pull", "exp", "--registry", "@reg", "--out", "@out", "--trusted-key", value);
            Add("compose", "--recipe", value);
            Add("serve", "--model", "@golden/flexolmo-tiny", "--port", "0", "--api-keys", value);
        }

        foreach (var (option, value) in Pairs(["--seq-len", "--samples"], Ints))
        {
            Add(["prepare-anchor", "--model", "@golden/olmo2-tiny", "--public-data", "@tokens.bin", "--out", "@out", .. option == "--seq-len" ? new[] { "--samples", "4" } : ["--seq-len", "16"], option, value]);
        }

        foreach (var registry in new[] { "https://", "https://x", "http://127.0.0.1:1/devstoreaccount1/c", "file://", "@garbage.bin", "https://a.blob.core.windows.net/", "ftp://x", "@nonexistent" })
        {
            Add("publish", "@exp", "--registry", registry);
            Add("list", "--registry", registry);
            Add("pull", "exp", "--registry", registry, "--out", "@out");
            Add("revoke", "exp@1.0.0", "--registry", registry, "--reason", "x");
        }

        foreach (var connection in new[] { "garbage", "AccountName=x;AccountKey=@@@", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;" })
        {
            Add("list", "--registry", "http://127.0.0.1:1/devstoreaccount1/c", "--connection-string", connection);
        }

        foreach (var reference in new[] { "x@", "@1", "UPPER", "a/b", "../x", "anchor:", "anchor:sha256:zz", "sha256:00", "anchor:Bad", "exp\n" })
        {
            Add("pull", reference, "--registry", "@reg", "--out", "@out");
        }

        foreach (var reference in new[] { "x", "x@", "x@1", "../a@1", "exp@1.0.0\u0007" })
        {
            Add("revoke", reference, "--registry", "@reg", "--reason", "r");
        }

        foreach (var anchor in new[] { "x", "-1", "sha256:zz" })
        {
            Add("list", "--registry", "@reg", "--anchor", anchor);
        }

        foreach (var recipe in new[] { "r-flow", "r-dupflow", "r-bignum", "r-bignum2", "r-shard0", "r-shard0s", "r-shardbig", "r-trust0", "r-alias", "r-tab", "r-binary", "r-multi", "r-keyint", "r-deep", "r-laughs", "r-anchorbad", "r-expbad", "r-reg", "r-reg2", "r-ftp" })
        {
            Add("compose", "--recipe", $"@{recipe}.yaml");
        }

        foreach (var spec in new[] { "a", "=x", "a=", "x=y=z" })
        {
            Add("eval", "--model", "@golden/olmo2-tiny", "--data", spec, "--out", "@out");
        }

        foreach (var masks in new[] { "x", "only:", "without:nope", "only:99", "anchor anchor", "+" })
        {
            Add("eval", "--model", "@golden/flexolmo-tiny", "--data", "a=@tokens.bin", "--out", "@out", "--masks", masks, "--max-tokens", "64", "--seq-len", "16");
        }

        foreach (var (option, value) in Pairs(["--max-tokens", "--seq-len", "--batch-size"], Ints))
        {
            Add("eval", "--model", "@golden/olmo2-tiny", "--data", "a=@tokens.bin", "--out", "@out", option, value);
        }

        foreach (var anchor in new[] { "@garbage-anchor", "@dir", "@nonexistent", "@golden/olmo2-tiny" })
        {
            Add("eval", "--model", "@exp", "--anchor", anchor, "--data", "a=@tokens.bin", "--out", "@out", "--max-tokens", "64", "--seq-len", "16");
        }

        foreach (var (option, values) in new (string, string[])[]
        {
            ("--port", [.. Ints, "65536"]), ("--max-batch", Ints), ("--max-queue", Ints), ("--max-prompt-tokens", Ints), ("--max-tokens", Ints), ("--revocation-poll", Doubles),
            ("--revocation-grace", Doubles), ("--host", ["x y", "999.1.1.1", "example.invalid"]),
            ("--api-keys", ["@keys-missing.json", "@keys-null.json", "@keys-str.json", "@keys-empty.json", "@keys-obj.json", "@keys-notobj.json", "@keys-nokeys.json"]),
            ("--registry", ["https://", "ftp://x"]),
        })
        {
            foreach (var value in values)
            {
                Add(["serve", "--model", "@golden/flexolmo-tiny", .. option == "--port" ? Array.Empty<string>() : ["--port", "0"], option, value]);
            }
        }

        foreach (var option in new[] { "--model", "--out", "--input-ids" })
        {
            string[] args = ["logits", "--model", "@golden/olmo2-tiny", "--input-ids", "@ids-ok.json", "--out", "@out"];
            args[Array.IndexOf(args, option) + 1] = string.Empty;
            Add(args);
        }

        Add("demo", "--quick", "--work", "@garbage.bin");
        Add("demo", "--quick", "--corpus", "@nonexistent", "--work", "@out");
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task HostileValue_EndsWithExitCode0Or1Or2_AndAOneLineError(string label, string[] args)
    {
        var resolved = world.Resolve(args);
        using var stop = new CancellationTokenSource(resolved[0] == "serve" ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(120));

        var run = await CliRun.RunAsync(stop.Token, resolved);

        Assert.False(run.ExitCode == CommandRunner.InternalError || run.Error.Contains("internal error", StringComparison.Ordinal), $"{label}\n{run}");
        Assert.True(run.ExitCode is 0 or 1 or 2, $"{label}\n{run}");
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
        if (run.ExitCode != 0)
        {
            var lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length > 0 && lines[^1].StartsWith("error: ", StringComparison.Ordinal), $"{label}\n{run}");
        }
    }

    [Theory]
    [InlineData("unreachable Azure registry", new[] { "list", "--registry", "http://127.0.0.1:1/devstoreaccount1/registry", "--connection-string", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;" }, 1, "reachable")]
    [InlineData("broken flow-style YAML", new[] { "compose", "--recipe", "@r-flow.yaml" }, 1, "not valid YAML")]
    [InlineData("a number too large for its field (recipe)", new[] { "compose", "--recipe", "@r-bignum.yaml" }, 1, "experts_per_token")]
    [InlineData("a number too large for its field (option)", new[] { "train-expert", "--anchor", "@anchor", "--data", "@tokens.bin", "--name", "e", "--owner", "me", "--out", "@out", "--seq-len", "99999999999999999999" }, 2, "--seq-len")]
    [InlineData("a shard size of zero", new[] { "compose", "--recipe", "@r-shard0.yaml" }, 1, "shard_size")]
    [InlineData("a .jsonl.gz that is not gzip", new[] { "train-tokenizer", "--data", "@notgzip.jsonl.gz", "--out", "@out" }, 1, "a .gz file must be gzip-compressed")]
    [InlineData("train-expert without an owner", new[] { "train-expert", "--anchor", "@anchor", "--data", "@tokens.bin", "--name", "e", "--out", "@out" }, 2, "--owner")]
    public async Task TheCasesThatCrashedBefore_GiveAOneLineErrorAndExitCode1Or2_AsTheRealExecutable(string what, string[] args, int exitCode, string named)
    {
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "flexolmo")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in world.Resolve(args))
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        var lines = (await error).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        await output;

        Assert.True(process.ExitCode == exitCode, $"{what}: exit {process.ExitCode}\n{await error}");
        Assert.StartsWith("error: ", lines[^1], StringComparison.Ordinal);
        Assert.Contains(named, lines[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", await error, StringComparison.Ordinal);
    }

    private static IEnumerable<(string Option, string Value)> Pairs(IEnumerable<string> options, IEnumerable<string> values) =>
        options.SelectMany(o => values.Select(v => (o, v)));

    private static string Label(string[] args)
    {
        var text = Format.OneLine(string.Join(' ', args.Select(a => a.Length > 40 ? a[..20] + "..." : a)));
        return text.Length > 150 ? text[..150] : text;
    }
}
