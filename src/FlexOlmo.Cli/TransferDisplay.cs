using FlexOlmo.Registry;
using Spectre.Console;

namespace FlexOlmo.Cli;

/// <summary>Transfer progress: bars with bytes/s on a terminal, one line per file otherwise.</summary>
internal static class TransferDisplay
{
    public static async Task<T> RunAsync<T>(CommandContext context, Func<IProgress<TransferProgress>, Task<T>> transfer)
    {
        var interactive = ReferenceEquals(context.Output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!interactive)
        {
            var reported = new HashSet<string>();
            var started = new Dictionary<string, DateTime>();
            return await transfer(new SyncProgress<TransferProgress>(p =>
            {
                started.TryAdd(p.File, DateTime.UtcNow);
                if (p.Done >= p.Total && reported.Add(p.File))
                {
                    var seconds = Math.Max(1e-3, (DateTime.UtcNow - started[p.File]).TotalSeconds);
                    context.Output.WriteLine(p.Skipped
                        ? $"  {p.File}: already in the registry, skipped"
                        : Format.Invariant($"  {p.File}: {Format.Bytes(p.Total)} in {seconds:0.0} s ({Format.Bytes((long)(p.Total / seconds))}/s)"));
                }
            })).ConfigureAwait(false);
        }

        T result = default!;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                var progress = new SyncProgress<TransferProgress>(p =>
                {
                    lock (tasks)
                    {
                        if (!tasks.TryGetValue(p.File, out var task))
                        {
                            task = tasks[p.File] = ctx.AddTask(Markup.Escape(p.File + (p.Skipped ? " (already there)" : string.Empty)), maxValue: Math.Max(1, p.Total));
                        }

                        task.Value = p.Done;
                    }
                });
                result = await transfer(progress).ConfigureAwait(false);
            }).ConfigureAwait(false);
        return result;
    }
}
