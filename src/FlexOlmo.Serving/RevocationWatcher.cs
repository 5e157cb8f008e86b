using FlexOlmo.Registry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FlexOlmo.Serving;

/// <summary>
/// Polls the registry for revocations of the served experts (by name, version and manifest hash from the sidecar);
/// a revoked expert stops taking part in every request, in-flight ones included, from the next decode step.
/// </summary>
public sealed class RevocationWatcher(ModelHost host, RevocationState state, ServerOptions options, ILogger<RevocationWatcher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Registry is null || host.Sidecar is null)
        {
            return;
        }

        var interval = TimeSpan.FromSeconds(Math.Max(0.2, options.RevocationPollSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CheckAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                state.Failed(e.Message);
                logger.LogWarning("revocation check against {Registry} failed: {Message}", options.Registry, e.Message);
            }

            await Task.Delay(interval, stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One poll: reads each served expert's manifest and revocation record.</summary>
    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        var registry = new ExpertRegistry(await RegistryConnection.OpenAsync(options.Registry, options.ConnectionString, cancellationToken).ConfigureAwait(false));
        var revoked = new List<int>();
        foreach (var expert in host.Sidecar!.Experts.Where(e => e.Index > 0 && e.Version is not null))
        {
            if (!await registry.Store.ExistsAsync(RegistryLayout.ExpertManifest(expert.Name, expert.Version!), cancellationToken).ConfigureAwait(false))
            {
                continue;
            }

            var (manifest, sha) = await registry.ReadManifestAsync(expert.Name, expert.Version!, cancellationToken).ConfigureAwait(false);
            if ((expert.ManifestSha256 is null || expert.ManifestSha256 == sha) && await registry.RevocationAsync(manifest, sha, cancellationToken).ConfigureAwait(false) is not null)
            {
                revoked.Add(expert.Index);
            }
        }

        var before = state.Revoked;
        state.Update(revoked);
        foreach (var index in revoked.Except(before))
        {
            logger.LogWarning("expert {Name} was revoked by its owner; it no longer takes part in any request", host.Experts[index].Name);
        }
    }
}
