using System.CommandLine;
using FlexOlmo.Core.Native;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli;

/// <summary>
/// Runs a command body: loads libtorch when asked, turns user errors into one line on stderr and exit code 1. Anything
/// else that escapes a command is a bug in flexolmo, never the user's: it is reported on one line too (exit code 70,
/// EX_SOFTWARE), with the stack trace only when FLEXOLMO_DEBUG=1, so no input ends in a crash.
/// </summary>
internal static class CommandRunner
{
    public static async Task<int> RunAsync(ParseResult parseResult, bool needsTorch, Func<CommandContext, Task<int>> body, CancellationToken cancellationToken)
    {
        var output = parseResult.InvocationConfiguration.Output;
        var error = parseResult.InvocationConfiguration.Error;
        try
        {
            if (needsTorch)
            {
                TorchNative.Initialize(parseResult.GetValue(CommonOptions.LibTorch), message => error.WriteLine(message));
            }

            return await body(new CommandContext(parseResult, output, error, cancellationToken)).ConfigureAwait(false);
        }
        catch (FlexOlmoException e)
        {
            await error.WriteLineAsync($"error: {Format.OneLine(e.Message)}").ConfigureAwait(false);
            return 1;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync("cancelled").ConfigureAwait(false);
            return 130;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"error: {Format.OneLine(e.Message)}").ConfigureAwait(false);
            return 1;
        }
        catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
        {
            var detail = Environment.GetEnvironmentVariable("FLEXOLMO_DEBUG") is "1" ? Environment.NewLine + e : string.Empty;
            await error.WriteLineAsync($"error: internal error ({e.GetType().Name}: {Format.OneLine(e.Message)}). This is a bug in flexolmo, not in your input; please report it with the command you ran (FLEXOLMO_DEBUG=1 shows the stack trace).{detail}").ConfigureAwait(false);
            return InternalError;
        }
    }

    /// <summary>Exit code for a bug (EX_SOFTWARE); user errors exit with 1, command lines that do not parse with 2.</summary>
    public const int InternalError = 70;

    public static Task<int> Run(ParseResult parseResult, bool needsTorch, Func<CommandContext, int> body, CancellationToken cancellationToken) =>
        RunAsync(parseResult, needsTorch, context => Task.FromResult(body(context)), cancellationToken);
}

/// <summary>What a command body gets: the parse result, where to write, and the cancellation token.</summary>
internal sealed record CommandContext(ParseResult ParseResult, TextWriter Output, TextWriter Error, CancellationToken CancellationToken)
{
    public T Get<T>(Option<T> option) => ParseResult.GetValue(option)!;

    public T Get<T>(Argument<T> argument) => ParseResult.GetValue(argument)!;
}
