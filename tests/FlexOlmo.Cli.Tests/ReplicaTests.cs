using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using FlexOlmo.Formats;
using FlexOlmo.Testing;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// Serving scales out as identical replicas behind a load balancer, all reading one composed model and one registry.
/// Two real <c>flexolmo serve</c> processes (each with its own FLEXOLMO_HOME, so neither learns from the other's
/// memory) watch one Azurite registry: a revocation reaches both, within two poll intervals, and both report it alike.
/// </summary>
public sealed class ReplicaTests
{
    private const double PollSeconds = 2; // 0.5 s failed twice under the full test run on a 2-core host (a replica still used the expert a second after revoke): a check of three experts against Azurite can take most of so short an interval

    [Fact]
    public async Task TwoReplicas_OfOneModelAndRegistry_BothStopUsingARevokedExpert_WithinTwoPollIntervals()
    {
        using var azurite = new AzuriteServer();
        using var folder = new TempDirectory("cli-replicas");
        string At(string name) => Path.Combine(folder.Path, name);
        var registry = azurite.RegistryUri("replicas");
        var connection = azurite.ConnectionString;
        async Task Ok(params string[] args)
        {
            var run = await CliRun.RunAsync(args);
            Assert.True(run.ExitCode == 0, $"{string.Join(' ', args)}\n{run}");
        }

        // The golden 4-expert model, taken apart and published, then composed again from the registry.
        await Ok("decompose", "--model", Path.Combine(TestPaths.HfReference, "flexolmo-tiny"), "--out", At("parts"));
        foreach (var expert in new[] { "expert-1", "expert-2", "expert-3" })
        {
            await Ok("publish", At($"parts/experts/{expert}"), "--registry", registry, "--connection-string", connection);
        }

        File.WriteAllText(At("recipe.yaml"), $"name: replicated\nregistry: {registry}\nanchor: {{ source: {At("parts/anchor")} }}\nexperts:\n  - source: expert-1@1.0.0\n  - source: expert-2@1.0.0\n  - source: expert-3@1.0.0\nexperts_per_token: 4\n");
        await Ok("compose", "--recipe", At("recipe.yaml"), "--out", At("model"), "--connection-string", connection);

        using var first = Replica.Start(At("model"), registry, connection, At("home-1"));
        using var second = Replica.Start(At("model"), registry, connection, At("home-2"));
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        await first.WaitReadyAsync(client);
        await second.WaitReadyAsync(client);
        Assert.Contains("expert-2", await first.ExpertsUsedAsync(client));
        Assert.Contains("expert-2", await second.ExpertsUsedAsync(client));

        await Ok("revoke", "expert-2@1.0.0", "--registry", registry, "--connection-string", connection, "--reason", "consent withdrawn");
        var revoked = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(2 * PollSeconds));

        // By two poll intervals after the revocation, neither replica routes a token to the expert...
        var usedFirst = await first.ExpertsUsedAsync(client);
        var usedSecond = await second.ExpertsUsedAsync(client);
        Assert.True(revoked.Elapsed < TimeSpan.FromSeconds(2 * PollSeconds) + TimeSpan.FromSeconds(5), $"the checks took {revoked.Elapsed}");
        Assert.DoesNotContain("expert-2", usedFirst);
        Assert.DoesNotContain("expert-2", usedSecond);
        Assert.Contains("expert-1", usedFirst);

        // ...and both report the same revocation state on /health.
        var healthFirst = await first.RevokedAsync(client);
        var healthSecond = await second.RevokedAsync(client);
        Assert.Equal("""[{"index":2,"name":"expert-2"}]""", healthFirst);
        Assert.Equal(healthFirst, healthSecond);
    }

    /// <summary>One <c>flexolmo serve</c> process on a free port.</summary>
    private sealed class Replica : IDisposable
    {
        private readonly Process _process;
        private readonly Task<string> _output;
        private readonly Task<string> _error;

        private Replica(Process process, Uri address)
        {
            _process = process;
            Address = address;
            _output = process.StandardOutput.ReadToEndAsync();
            _error = process.StandardError.ReadToEndAsync();
        }

        public Uri Address { get; }

        public static Replica Start(string model, string registry, string connection, string home)
        {
            var port = FreePort();
            var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "flexolmo")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var arg in new[] { "serve", "--model", model, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--dtype", "float32", "--registry", registry, "--connection-string", connection, "--revocation-poll", PollSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            {
                info.ArgumentList.Add(arg);
            }

            Directory.CreateDirectory(home);
            info.Environment[FlexOlmoHome.Variable] = home;
            return new Replica(Process.Start(info)!, new Uri($"http://127.0.0.1:{port}/"));
        }

        public async Task WaitReadyAsync(HttpClient client)
        {
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(90))
            {
                Assert.False(_process.HasExited, $"serve exited with {(_process.HasExited ? _process.ExitCode : 0)}: {await Logs()}");
                try
                {
                    using var response = await client.GetAsync(new Uri(Address, "ready"));
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                    // not listening yet
                }

                await Task.Delay(100);
            }

            Assert.Fail($"serve at {Address} was not ready within 90 s");
        }

        /// <summary>The experts a greedy completion used on this replica.</summary>
        public async Task<string[]> ExpertsUsedAsync(HttpClient client)
        {
            using var response = await client.PostAsJsonAsync(new Uri(Address, "v1/completions"), new JsonObject { ["prompt"] = new JsonArray(3, 4, 5), ["max_tokens"] = 2, ["temperature"] = 0 });
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToJsonString());
            return body["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()).ToArray();
        }

        /// <summary>/health's revoked experts, as index and name.</summary>
        public async Task<string> RevokedAsync(HttpClient client)
        {
            var health = JsonNode.Parse(await client.GetStringAsync(new Uri(Address, "health")))!;
            return new JsonArray(health["revocations"]!["revoked"]!.AsArray()
                .Select(r => (JsonNode)new JsonObject { ["index"] = r!["index"]!.GetValue<int>(), ["name"] = r["name"]!.GetValue<string>() }).ToArray()).ToJsonString();
        }

        private async Task<string> Logs() => _process.HasExited ? $"{await _output}\n{await _error}" : "(running)";

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }

            _process.Dispose();
        }
    }
}
