using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using FlexOlmo.Testing;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// Files a hostile (or unlucky) user hands the CLI, next to a few good ones to start from: broken, lying, huge and
/// empty configs, checkpoints, tokenizers, token shards, recipes, keys and API-key files; a valid anchor and expert
/// made with the CLI from the golden olmo2-tiny fixture. Arguments of a sweep case refer to them as "@name"; "@out"
/// is a fresh path for each case; "@golden/NAME" is a golden fixture folder.
/// </summary>
public sealed class HostileWorld : IDisposable
{
    private int _outputs;

    public HostileWorld()
    {
        Core.Native.TorchNative.Initialize();
        Root = new TempDirectory("hostile");
        var random = new Random(1);
        byte[] Bytes(int n)
        {
            var bytes = new byte[n];
            random.NextBytes(bytes);
            return bytes;
        }

        Directory.CreateDirectory(At("dir"));
        Directory.CreateDirectory(At("o"));
        File.WriteAllText(At("empty.txt"), string.Empty);
        File.WriteAllBytes(At("garbage.bin"), Bytes(1000));
        File.WriteAllText(At("notjson.json"), "{");
        File.WriteAllText(At("array.json"), "[1,2]");
        File.WriteAllText(At("text.txt"), string.Concat(Enumerable.Repeat("hello world ", 100)));
        File.WriteAllText(At("vec.json"), new JsonArray(Enumerable.Range(0, 64).Select(i => (JsonNode)Math.Sin(i)).ToArray()).ToJsonString());

        var ids = Enumerable.Range(0, 4000).Select(i => (ushort)(i % 200 == 0 ? 2 : 3 + random.Next(509))).ToArray();
        File.WriteAllBytes(At("tokens.bin"), ids.SelectMany(BitConverter.GetBytes).ToArray());
        File.WriteAllBytes(At("odd.bin"), [1, 2, 3]);
        File.WriteAllBytes(At("bigids.bin"), new ushort[] { 600, 700, 800, 900 }.SelectMany(BitConverter.GetBytes).ToArray());
        Npy("bad-shape.npy", "<u2", "(9999,)", 20);
        Npy("bad-dtype.npy", "<f4", "(10,)", 40);
        Npy("twod.npy", "<u2", "(2, 5)", 20);
        Npy("bigendian.npy", ">u2", "(10,)", 20);
        File.WriteAllText(At("notgzip.jsonl.gz"), "{\"text\": \"hello\"}\n");
        using (var gz = new GZipStream(File.Create(At("truncated.jsonl.gz")), CompressionLevel.Fastest))
        {
            gz.Write(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"text\": \"hello\"}\n", 1000))));
        }

        File.WriteAllBytes(At("truncated.jsonl.gz"), File.ReadAllBytes(At("truncated.jsonl.gz"))[..40]);
        File.WriteAllText(At("badline.jsonl"), "{\"text\": \"ok\"}\n{not json\n");
        File.WriteAllText(At("wrongtype.jsonl"), "{\"text\": 5}\n");

        var tiny = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixture("olmo2-tiny"), "config.json")))!.AsObject();
        JsonObject Tiny(Action<JsonObject> edit)
        {
            var copy = tiny.DeepClone().AsObject();
            edit(copy);
            return copy;
        }

        Model("m-noconfig", null);
        Model("m-badconfig", "{garbage");
        Model("m-huge", Tiny(c => (c["hidden_size"], c["intermediate_size"]) = (1_000_000_000, 1_000_000_000)).ToJsonString());
        Model("m-hugevocab", Tiny(c => c["vocab_size"] = 2_000_000_000).ToJsonString());
        Model("m-bigbutbounded", Tiny(c => (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]) = (65536, 500000, 1024)).ToJsonString());
        Model("m-strnum", Tiny(c => c["hidden_size"] = "64").ToJsonString());
        Model("m-ropetype", Tiny(c => c["rope_parameters"] = new JsonObject { ["rope_type"] = 5, ["rope_theta"] = "x" }).ToJsonString());
        Model("m-overflow", Tiny(c => c["num_hidden_layers"] = 1e300).ToJsonString());
        Model("m-array", "[1,2]");
        Model("m-noweights", tiny.ToJsonString(), weights: []);
        Model("m-badweights", tiny.ToJsonString(), weights: Bytes(100));
        var lie = new byte[10];
        BinaryPrimitives.WriteUInt64LittleEndian(lie, 1UL << 62);
        Model("m-headerlie", tiny.ToJsonString(), weights: lie);
        var header = Encoding.UTF8.GetBytes("{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[512,64],\"data_offsets\":[0,1099511627776]}}");
        var offsetLie = new byte[8 + header.Length + 16];
        BinaryPrimitives.WriteUInt64LittleEndian(offsetLie, (ulong)header.Length);
        header.CopyTo(offsetLie, 8);
        Model("m-offsetlie", tiny.ToJsonString(), weights: offsetLie);
        Model("m-mismatch", File.ReadAllText(Path.Combine(TestPaths.Fixture("flexolmo-tiny"), "config.json")));
        Model("m-badtok", tiny.ToJsonString(), extra: ("tokenizer.json", "{\"model\": 5}"));
        Model("m-badtok2", tiny.ToJsonString(), extra: ("tokenizer.json", "{garbage"));
        Model("m-badindex", tiny.ToJsonString(), weights: [], extra: ("model.safetensors.index.json", "{\"weight_map\": {\"model.embed_tokens.weight\": \"../../etc/passwd.safetensors\"}}"));
        Model("m-badindex2", tiny.ToJsonString(), weights: [], extra: ("model.safetensors.index.json", "{\"weight_map\": {\"model.embed_tokens.weight\": \"missing.safetensors\"}}"));

        foreach (var (name, json) in new[]
        {
            ("ids-ok.json", """{"input_ids": [[3, 4, 5]]}"""), ("ids-str.json", """{"input_ids": "x"}"""), ("ids-ragged.json", """{"input_ids": [[1, 2], [3]]}"""),
            ("ids-neg.json", """{"input_ids": [[-1, 2]]}"""), ("ids-big.json", """{"input_ids": [[100000]]}"""), ("ids-float.json", """{"input_ids": [[1.5]]}"""),
            ("ids-huge.json", """{"input_ids": [[1e30]]}"""), ("ids-empty.json", """{"input_ids": []}"""), ("ids-emptyrow.json", """{"input_ids": [[]]}"""),
            ("ids-long.json", $$"""{"input_ids": [[{{string.Join(",", Enumerable.Range(3, 300))}}]]}"""),
            ("keys-missing.json", """{"keys": [{"name": "a", "key": "sk-12345678"}]}"""), ("keys-null.json", """{"keys": [{"name": "a", "key": "sk-12345678", "experts": null}]}"""),
            ("keys-str.json", """{"keys": [{"name": "a", "key": "sk-12345678", "experts": "public"}]}"""), ("keys-empty.json", """{"keys": [{"name": "a", "key": "sk-12345678", "experts": ""}]}"""),
            ("keys-obj.json", """{"keys": [{"name": "a", "key": "sk-12345678", "experts": {}}]}"""), ("keys-notobj.json", """{"keys": [5]}"""), ("keys-nokeys.json", "[1]"),
        })
        {
            File.WriteAllText(At(name), json);
        }

        foreach (var (name, yaml) in new[]
        {
            ("r-flow.yaml", "name: x\nanchor: {source: a\nexperts: [ {source: b}\n"), ("r-dupflow.yaml", "name: x\nanchor: {source: a, source: b}\nexperts: [{source: b}]\n"),
            ("r-bignum.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: exp}]\nexperts_per_token: 99999999999999999999999\n"),
            ("r-bignum2.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: exp}]\nexperts_per_token: 2147483648\n"),
            ("r-shard0.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: exp}]\noutput: {path: o/shard0, shard_size: 0}\n"),
            ("r-shard0s.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: exp}]\noutput: {path: o/shard0s, shard_size: \"0GB\"}\n"),
            ("r-shardbig.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: exp}]\noutput: {path: o/shardbig, shard_size: \"1e30TB\"}\n"),
            ("r-trust0.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: exp}]\ntrusted_keys: []\noutput: {path: o/t0}\n"),
            ("r-alias.yaml", "name: &a x\nanchor: {source: *a}\nexperts: [{source: exp}]\n"), ("r-tab.yaml", "name: x\n\tanchor: y\n"),
            ("r-multi.yaml", "name: x\n---\nname: y\n"), ("r-keyint.yaml", "{1: 2}\n"), ("r-deep.yaml", "a: " + new string('[', 200) + new string(']', 200) + "\n"),
            ("r-laughs.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"),
            ("r-anchorbad.yaml", "name: x\nanchor: {source: m-badconfig}\nexperts: [{source: exp}]\n"), ("r-expbad.yaml", "name: x\nanchor: {source: anchor}\nexperts: [{source: garbage-pkg}]\n"),
            ("r-reg.yaml", "name: x\nregistry: \"https://\"\nanchor: {source: \"anchor:x\"}\nexperts: [{source: e@1}]\n"),
            ("r-reg2.yaml", "name: x\nregistry: \"http://127.0.0.1:1/devstoreaccount1/c\"\nanchor: {source: \"anchor:x\"}\nexperts: [{source: e@1}]\n"),
            ("r-ftp.yaml", "name: x\nregistry: \"ftp://x/y\"\nanchor: {source: \"anchor:x\"}\nexperts: [{source: e@1}]\n"),
        })
        {
            File.WriteAllText(At(name), yaml);
        }

        File.WriteAllBytes(At("r-binary.yaml"), Bytes(300));
        Directory.CreateDirectory(At("garbage-pkg"));
        File.WriteAllText(At("garbage-pkg/expert.json"), "{\"format\": 5}");
        Directory.CreateDirectory(At("garbage-anchor"));
        File.WriteAllText(At("garbage-anchor/anchor.json"), "[]");
        File.WriteAllText(At("bad.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");

        Run("prepare-anchor", "--model", TestPaths.Fixture("olmo2-tiny"), "--router-embedding", At("vec.json"), "--out", At("anchor"), "--name", "tiny");
        Run("train-expert", "--anchor", At("anchor"), "--data", At("tokens.bin"), "--name", "exp", "--owner", "me", "--out", At("exp"),
            "--steps", "2", "--seq-len", "16", "--batch-tokens", "32", "--router-embedding", At("vec.json"));
        Run("publish", At("exp"), "--registry", At("reg"));
    }

    public TempDirectory Root { get; }

    /// <summary>Replaces "@name", "@out" and "@golden/NAME" in a case's arguments.</summary>
    public string[] Resolve(IEnumerable<string> args) => args.Select(a => a switch
    {
        "@out" => At($"o/out{Interlocked.Increment(ref _outputs)}"),
        _ when a.StartsWith("@golden/", StringComparison.Ordinal) => TestPaths.Fixture(a["@golden/".Length..]),
        _ when a.StartsWith('@') => At(a[1..]),
        _ => a,
    }).ToArray();

    public string At(string relative) => Path.Combine(Root.Path, relative);

    public void Dispose() => Root.Dispose();

    private void Npy(string name, string descr, string shape, int bytes)
    {
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        header += new string(' ', 63 - ((10 + header.Length) % 64)) + "\n";
        using var file = File.Create(At(name));
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)header.Length, (byte)(header.Length >> 8)]);
        file.Write(Encoding.ASCII.GetBytes(header));
        file.Write(new byte[bytes]);
    }

    private void Model(string name, string? config, byte[]? weights = null, (string Name, string Text)? extra = null)
    {
        var folder = At(name);
        Directory.CreateDirectory(folder);
        if (config is not null)
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), config);
        }

        if (weights is null)
        {
            File.Copy(Path.Combine(TestPaths.Fixture("olmo2-tiny"), "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        }
        else if (weights.Length > 0)
        {
            File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), weights);
        }

        if (extra is { } file)
        {
            File.WriteAllText(Path.Combine(folder, file.Name), file.Text);
        }
    }

    private static void Run(params string[] args)
    {
        var run = CliRun.RunAsync(args).GetAwaiter().GetResult();
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException($"setting up the hostile world failed: flexolmo {string.Join(' ', args)}\n{run}");
        }
    }
}
