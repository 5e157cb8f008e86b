using FlexOlmo.Registry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FlexOlmo.Serving;

/// <summary>
/// Checks the registry for revocations of the served experts (by the name, version, content digest and signer the
/// sidecar recorded at composition), once before the server takes requests and then at the start of every poll interval, through
/// the registry's one revocation check. A revoked expert stops taking part in every request, in-flight ones
/// included, from the next decode step, and stays out. A failed check is reported (log, /health, /metrics) and,
/// past the grace period, suspends every checked expert.
/// </summary>
internal sealed class RevocationWatcher(ModelHost host, RevocationState state, ServerOptions options, ILogger<RevocationWatcher> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var governed = host.Sidecar?.Experts.Where(e => e.Index > 0 && e.Version is not null).ToList() ?? [];
        if (options.Registry is not null && governed.Count > 0)
        {
            state.Track(governed.Select(e => e.Index), options.RevocationGrace);
            await TryCheckAsync(cancellationToken).ConfigureAwait(false);
        }
        else if (governed.Count > 0)
        {
            logger.LogWarning("serving {Count} published experts without --registry: their owners' revocations are NOT checked", governed.Count);
        }

        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!state.Checking)
        {
            return;
        }

        // Checks start at a fixed rate, not a pause after each check: a revocation that lands just after a check began
        // is seen by the next one, which starts one interval after that one started, whatever the checks take (with a
        // pause after each, a check that took d gave 2d + interval; on a loaded 2-core host that passed 2 intervals).
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(0.2, options.RevocationPollSeconds)));
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            await TryCheckAsync(stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One check of every governed expert; any failure leaves the state as it was and is recorded.</summary>
    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        var ledger = options.RevocationLedgerFolder is { } folder ? new RevocationLedger(folder) : null;
        var registry = new ExpertRegistry(await RegistryConnection.OpenAsync(options.Registry, options.ConnectionString, cancellationToken).ConfigureAwait(false), ledger);
        foreach (var expert in host.Sidecar!.Experts.Where(e => state.Tracked.Contains(e.Index)))
        {
            var identity = new ExpertIdentity(expert.Name, expert.Version!, expert.ContentSha256, expert.SignedBy);
            if (await registry.CheckRevocationAsync(identity, cancellationToken).ConfigureAwait(false) is { } finding)
            {
                if (!state.IsRevoked(expert.Index))
                {
                    logger.LogWarning("expert {Name} no longer takes part in any request: {Message}", expert.Name, finding.Message);
                }

                state.Revoke(expert.Index, finding);
            }
        }

        state.Succeeded();
    }

    private async Task TryCheckAsync(CancellationToken cancellationToken)
    {
        try
        {
            await CheckAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            state.Failed(e.Message);
            logger.LogError(
                "revocation check against {Registry} failed ({Message}); {Effect}",
                options.Registry,
                e.Message,
                state.Suspended ? "every published expert is suspended until a check succeeds" : $"experts stay as they were for at most {options.RevocationGrace.TotalSeconds:0} s");
        }
    }
}
