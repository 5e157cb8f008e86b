using System.CommandLine;
using FlexOlmo.Benchmarks;
using FlexOlmo.Core.Native;

TorchNative.Initialize(Environment.GetEnvironmentVariable(TorchNative.LibTorchEnvironmentVariable), Console.Error.WriteLine);
var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu", Recursive = true, Description = "cpu or cuda[:N]" };
var dtypes = new Option<string[]>("--dtype") { DefaultValueFactory = _ => ["float32", "bfloat16"], Recursive = true, AllowMultipleArgumentsPerToken = true };
var json = new Option<string?>("--json") { Recursive = true, Description = "Also write the rows to this JSON file." };

var forward = new Command("forward", "Prefill throughput vs the matmul peak (model-core issue).");
var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 1 };
var tokens = new Option<int>("--tokens") { DefaultValueFactory = _ => 512 };
var repeats = new Option<int>("--repeats") { DefaultValueFactory = _ => 5 };
forward.Options.Add(batch);
forward.Options.Add(tokens);
forward.Options.Add(repeats);
forward.SetAction(r => ForwardBenchmark.Run(r.GetValue(device)!, r.GetValue(dtypes)!, r.GetValue(batch), r.GetValue(tokens), r.GetValue(repeats), r.GetValue(json)));

var decode = new Command("decode", "Decode tokens/s at batch 1 and 16 vs streaming the weights (generation issue).");
var batches = new Option<int[]>("--batches") { DefaultValueFactory = _ => [1, 16], AllowMultipleArgumentsPerToken = true };
var prompt = new Option<int>("--prompt") { DefaultValueFactory = _ => 128 };
var newTokens = new Option<int>("--new-tokens") { DefaultValueFactory = _ => 32 };
decode.Options.Add(batches);
decode.Options.Add(prompt);
decode.Options.Add(newTokens);
decode.SetAction(r => DecodeBenchmark.Run(r.GetValue(device)!, r.GetValue(dtypes)!, r.GetValue(batches)!, r.GetValue(prompt), r.GetValue(newTokens), r.GetValue(json)));

var train = new Command("train", "Expert-training tokens/s and model-FLOP utilisation vs the matmul peak (train-expert issue).");
var trainSteps = new Option<int>("--steps") { DefaultValueFactory = _ => 6 };
var microBatch = new Option<int>("--micro-batch") { DefaultValueFactory = _ => 4 };
train.Options.Add(trainSteps);
train.Options.Add(microBatch);
train.SetAction(r => TrainBenchmark.Run(r.GetValue(device)!, r.GetValue(dtypes)!, r.GetValue(trainSteps), r.GetValue(microBatch), r.GetValue(json)));

var registry = new Command("registry", "Publish/pull of a large expert to a local registry and Azurite vs cp (registry issue).");
var registryBytes = new Option<long>("--bytes") { DefaultValueFactory = _ => 1L << 30 };
registry.Options.Add(registryBytes);
registry.SetAction((r, ct) => RegistryBenchmark.RunAsync(r.GetValue(registryBytes), r.GetValue(json)));

var compose = new Command("compose", "Compose of a >= 2 GiB checkpoint vs cp of the same bytes, with peak memory (compose issue).");
compose.SetAction((r, ct) => ComposeBenchmark.RunAsync(r.GetValue(json)));

var released = new Command("released", "import-expert and decompose of >= 2 GiB checkpoints vs cp of the same bytes, with peak memory (released-models issue).");
released.SetAction((r, ct) => ReleasedBenchmark.RunAsync(r.GetValue(json)));

var serve = new Command("serve", "Load generator: tokens/s and time-to-first-token at 1, 8, 32 clients, unmasked vs random masks (serve issue).");
var clients = new Option<int[]>("--clients") { DefaultValueFactory = _ => [1, 8, 32], AllowMultipleArgumentsPerToken = true };
var perClient = new Option<int>("--requests-per-client") { DefaultValueFactory = _ => 3 };
var serveTokens = new Option<int>("--tokens") { DefaultValueFactory = _ => 32 };
serve.Options.Add(clients);
serve.Options.Add(perClient);
var sections = new Option<string[]>("--sections") { DefaultValueFactory = _ => ServeBenchmark.Sections, AllowMultipleArgumentsPerToken = true, Description = $"Parts to run: {string.Join(", ", ServeBenchmark.Sections)}." };
sections.AcceptOnlyFromAmong(ServeBenchmark.Sections);
var longRounds = new Option<int>("--long-prompt-rounds") { DefaultValueFactory = _ => 3, Description = "Times the long prompt arrives while 8 clients decode, each reported." };
serve.Options.Add(serveTokens);
serve.Options.Add(sections);
serve.Options.Add(longRounds);
serve.SetAction((r, ct) => ServeBenchmark.RunAsync(
    r.GetValue(device)!, r.GetValue(dtypes)![0], r.GetValue(clients)!, r.GetValue(perClient), r.GetValue(serveTokens), r.GetValue(sections)!, r.GetValue(longRounds), r.GetValue(json)));

var scale = new Command("scale", "The scale ladder: train, compose and decode from tiny to 1B, with how each figure grows with the parameter count (real-size issue).");
var sizes = new Option<string[]>("--sizes") { DefaultValueFactory = _ => ScaleBenchmark.Names, AllowMultipleArgumentsPerToken = true, Description = "Rungs to run: tiny, demo, 150m, 1b." };
var scaleSeq = new Option<int>("--seq-len") { DefaultValueFactory = _ => 256 };
var scaleMicroBatch = new Option<int>("--micro-batch") { DefaultValueFactory = _ => 4 };
var scaleSteps = new Option<int>("--steps") { DefaultValueFactory = _ => 3 };
scale.Options.Add(sizes);
scale.Options.Add(scaleSeq);
scale.Options.Add(scaleMicroBatch);
scale.Options.Add(scaleSteps);
scale.SetAction(r => ScaleBenchmark.Run(r.GetValue(sizes)!, r.GetValue(scaleSeq), r.GetValue(scaleMicroBatch), r.GetValue(scaleSteps), r.GetValue(json)));

var root = new RootCommand("FlexOlmo.NET benchmarks; every figure is a ratio against a baseline measured in the same run.") { device, dtypes, json, forward, decode, train, registry, compose, released, serve, scale };
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is ArgumentException or FlexOlmo.Formats.FlexOlmoException)
{
    // A request the benchmark cannot honour (an unknown rung, a device that is not there): one line, no stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
