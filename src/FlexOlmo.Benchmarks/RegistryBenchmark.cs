using System.Diagnostics;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Registry;
using FlexOlmo.Support;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Publish and pull of a large expert (1 GiB by default) to a local registry and to a real Azurite server, against
/// `cp` of the same bytes on the same disk in the same run. Goal: 50% of cp's throughput or better, with memory flat
/// in the file size (reported as the process's peak working set). Every contender is timed up to a `sync`, so each
/// pays for getting its bytes to disk (otherwise cp of a file deleted before writeback never touches the disk).
/// </summary>
internal static class RegistryBenchmark
{
    public static async Task RunAsync(long bytes, string? json)
    {
        var report = new Report("registry");
        var root = Directory.CreateTempSubdirectory("flexolmo-registry-bench-").FullName;
        try
        {
            var package = Path.Combine(root, "expert");
            Directory.CreateDirectory(package);
            WriteExpert(package, bytes);
            var weights = Path.Combine(package, ExpertTensorNames.WeightsFile);
            var size = new FileInfo(weights).Length;
            report.Note($"expert of {size / (double)(1L << 30):0.00} GiB in {root} (page cache warm for every contender)");

            var cp = double.MaxValue;
            for (var i = 0; i < 3; i++)
            {
                cp = Math.Min(cp, Time(() =>
                {
                    Run("cp", weights, Path.Combine(root, "cp-copy"));
                    Run("sync");
                }));
                File.Delete(Path.Combine(root, "cp-copy"));
            }

            var cpRate = size / cp;
            report.Add(new() { ["operation"] = "cp (best of 3)", ["seconds"] = cp, ["mib_per_s"] = cpRate / (1 << 20), ["fraction_of_cp"] = 1.0 });

            var n = 0;
            string Fresh(string name) => Path.Combine(root, $"{name}-{++n}");
            await Measure(report, "local publish", size, cpRate, async () =>
            {
                var folder = Fresh("local-registry");
                await new ExpertRegistry(new LocalStore(folder)).PublishExpertAsync(package, null, null, CancellationToken.None);
                return folder;
            });
            var localRegistry = Fresh("local-registry");
            var local = new ExpertRegistry(new LocalStore(localRegistry));
            await local.PublishExpertAsync(package, null, null, CancellationToken.None);
            await Measure(report, "local pull", size, cpRate, async () =>
            {
                var folder = Fresh("pulled");
                await local.PullExpertAsync("bench", folder, null, null, CancellationToken.None);
                return folder;
            });

            using var azurite = new AzuriteServer();
            await Measure(report, "azurite publish", size, cpRate, async () =>
            {
                var container = $"bench{++n}";
                var azure = new ExpertRegistry(await RegistryConnection.OpenAsync(azurite.RegistryUri(container), azurite.ConnectionString, CancellationToken.None));
                await azure.PublishExpertAsync(package, null, null, CancellationToken.None);
                return null;
            });
            var source = new ExpertRegistry(await RegistryConnection.OpenAsync(azurite.RegistryUri("source"), azurite.ConnectionString, CancellationToken.None));
            await source.PublishExpertAsync(package, null, null, CancellationToken.None);
            await Measure(report, "azurite pull", size, cpRate, async () =>
            {
                var folder = Fresh("pulled-azure");
                await source.PullExpertAsync("bench", folder, null, null, CancellationToken.None);
                return folder;
            });
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }

        report.Save(json);
    }

    /// <summary>Best of three runs into fresh targets (like cp's), each removed afterwards.</summary>
    private static async Task Measure(Report report, string name, long size, double cpRate, Func<Task<string?>> operation)
    {
        var seconds = double.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            Run("sync");
            var watch = Stopwatch.StartNew();
            var made = await operation();
            Run("sync");
            seconds = Math.Min(seconds, watch.Elapsed.TotalSeconds);
            if (made is not null)
            {
                Directory.Delete(made, recursive: true);
            }
        }

        using var process = Process.GetCurrentProcess();
        report.Add(new()
        {
            ["operation"] = name + " (best of 3)",
            ["seconds"] = seconds,
            ["mib_per_s"] = size / seconds / (1 << 20),
            ["fraction_of_cp"] = size / seconds / cpRate,
            ["peak_working_set_mib"] = process.PeakWorkingSet64 / (double)(1 << 20),
        });
    }

    private static void WriteExpert(string folder, long bytes)
    {
        var random = new Random(1);
        var chunk = new byte[1 << 24];
        SafetensorsWriter.WriteFile(Path.Combine(folder, ExpertTensorNames.WeightsFile), [new TensorToWrite("layers.0.mlp.gate_proj.weight", SafetensorsDType.U8, [bytes], stream =>
        {
            for (long done = 0; done < bytes; done += chunk.Length)
            {
                random.NextBytes(chunk);
                stream.Write(chunk, 0, (int)Math.Min(chunk.Length, bytes - done));
            }
        })]);
        var manifest = new ExpertManifest(
            "bench", "1.0.0", "bench", "Apache-2.0", new AnchorReference("sha256:" + new string('0', 64)), new Architecture("olmo2", 1, 1, 1, 1),
            new RouterEmbeddingProvenance("random", 1), new TrainingRecord(0, 0, 1, 1, 1e-3, 0, 0, "float32"),
            [FileDigest.Compute(folder, ExpertTensorNames.WeightsFile)], DateTimeOffset.UtcNow, ToolInfo.Current);
        SignedDocument<ExpertManifest>.Create(manifest, SchemaValidator.ExpertManifest, null).Save(Path.Combine(folder, ExpertManifest.FileName));
    }

    private static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalSeconds;
    }

    private static void Run(string program, params string[] arguments)
    {
        using var process = Process.Start(program, arguments);
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} exited with {process.ExitCode}");
        }
    }
}
