using FlexOlmo.Training;
using Spectre.Console;

namespace FlexOlmo.Cli;

/// <summary>
/// Shows training progress: a live bar (step, tokens/s, loss, lr, ETA) on a terminal, plain lines otherwise (logs,
/// pipes, tests), at most about a hundred of them per run.
/// </summary>
internal static class TrainingDisplay
{
    public static T Run<T>(CommandContext context, string title, Func<IProgress<string>, IProgress<TrainingProgress>, T> train)
    {
        var log = new SyncProgress<string>(line => context.Error.WriteLine(line));
        var interactive = ReferenceEquals(context.Output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!interactive)
        {
            long every = 0;
            var progress = new SyncProgress<TrainingProgress>(p =>
            {
                every = every == 0 ? Math.Max(1, p.TotalSteps / 100) : every;
                if (p.Step % every == 0 || p.Step == p.TotalSteps || p.Step == 1)
                {
                    context.Output.WriteLine(Line(p));
                }
            });
            return train(log, progress);
        }

        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: 1);
                var progress = new SyncProgress<TrainingProgress>(p =>
                {
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    task.Description = Markup.Escape($"{title} {Line(p)}");
                });
                result = train(new SyncProgress<string>(line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]")), progress);
            });
        return result;
    }

    private static string Line(TrainingProgress p) => Format.Invariant(
        $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:0.000}  lr {p.Lr:0.00e+0}  {p.TokensPerSecond:0} tok/s  eta {p.Eta:hh\\:mm\\:ss}");
}
