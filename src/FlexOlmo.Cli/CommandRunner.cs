using System.CommandLine;
using FlexOlmo.Core.Native;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli;

/// <summary>Runs a command body: loads libtorch when asked, turns user errors into one line on stderr and exit code 1.</summary>
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
            await error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return 1;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync("cancelled").ConfigureAwait(false);
            return 130;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    public static Task<int> Run(ParseResult parseResult, bool needsTorch, Func<CommandContext, int> body, CancellationToken cancellationToken) =>
        RunAsync(parseResult, needsTorch, context => Task.FromResult(body(context)), cancellationToken);
}

/// <summary>What a command body gets: the parse result, where to write, and the cancellation token.</summary>
internal sealed record CommandContext(ParseResult ParseResult, TextWriter Output, TextWriter Error, CancellationToken CancellationToken)
{
    public T Get<T>(Option<T> option) => ParseResult.GetValue(option)!;

    public T Get<T>(Argument<T> argument) => ParseResult.GetValue(argument)!;
}
