using System.Globalization;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli.Demo;

/// <summary>
/// Runs flexolmo commands in process, each printed first as the line a user could paste, for the demo and the study;
/// a command that fails stops the whole run with its exit code named.
/// </summary>
internal sealed class CommandSteps(CommandContext context, string work, string runName)
{
    public async Task RunAsync(params string[] args)
    {
        var code = await TryRunAsync(args).ConfigureAwait(false);
        if (code != 0)
        {
            throw new FlexOlmoException($"the {runName} stopped: 'flexolmo {args[0]}' failed (exit code {code}); its error is above. The work so far is in {work}.");
        }
    }

    /// <summary>Runs the command and returns its exit code; Ctrl-C (130) is rethrown as cancellation.</summary>
    public async Task<int> TryRunAsync(params string[] args)
    {
        var libTorch = context.ParseResult.GetValue(CommonOptions.LibTorch);
        context.Output.WriteLine("$ flexolmo " + string.Join(' ', args.Select(Quote)));
        string[] full = libTorch is null ? args : [.. args, "--libtorch", libTorch];
        var code = await FlexOlmoCli.RunAsync(full, context.Output, context.Error, context.CancellationToken).ConfigureAwait(false);
        return code == 130 ? throw new OperationCanceledException(context.CancellationToken) : code;
    }

    /// <summary>A path relative to the current folder when it lies under it, for commands a user can paste.</summary>
    public static string Display(string path)
    {
        var full = Path.GetFullPath(path);
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, full);
        return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? full : relative;
    }

    public static string I(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string D(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Quote(string argument) =>
        argument.Length > 0 && argument.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:@+,".Contains(c, StringComparison.Ordinal)) ? argument : $"'{argument.Replace("'", "'\\''", StringComparison.Ordinal)}'";
}
