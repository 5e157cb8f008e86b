using System.CommandLine;
using FlexOlmo.Cli.Commands;
using FlexOlmo.Cli.Demo;

namespace FlexOlmo.Cli;

/// <summary>The <c>flexolmo</c> command tree.</summary>
public static class FlexOlmoCli
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "FlexOlmo.NET: train feed-forward experts on your own data against a frozen public anchor, publish them, " +
            "compose opt-in mixtures of experts and serve them with per-request expert masks.");
        root.Options.Add(CommonOptions.LibTorch);
        foreach (var command in new Command[]
        {
            InspectCommand.Create(),
            LogitsCommand.Create(),
            TokenizeCommand.Create(),
            GenerateCommand.Create(),
            TrainTokenizerCommand.Create(),
            PretrainCommand.Create(),
            PrepareAnchorCommand.Create(),
            EmbedDomainCommand.Create(),
            TrainExpertCommand.Create(),
            KeysCommand.Create(),
            PublishCommand.Create(),
            ListCommand.Create(),
            PullCommand.Create(),
            RevokeCommand.Create(),
            ComposeCommand.Create(),
            TuneRouterCommand.Create(),
            EvalCommand.Create(),
            DemoCommand.Create(),
            ServeCommand.Create(),
        })
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    /// <summary>Parses and runs; user errors print one line to <paramref name="error"/> and return a non-zero code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var parseResult = BuildRoot().Parse(args);
        // Ctrl-C cancels the token; long jobs then save a checkpoint, so give them time before the process is killed.
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = TimeSpan.FromMinutes(5) };
        return await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a command inside another (the demo's stages): same output and cancellation, no process signal handling of its own.</summary>
    internal static async Task<int> RunNestedAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var parseResult = BuildRoot().Parse(args);
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
        return await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }
}
