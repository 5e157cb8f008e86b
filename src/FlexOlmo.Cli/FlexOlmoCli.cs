using System.CommandLine;
using System.CommandLine.Parsing;
using FlexOlmo.Cli.Commands;
using FlexOlmo.Cli.Demo;

namespace FlexOlmo.Cli;

/// <summary>The <c>flexolmo</c> command tree.</summary>
internal static class FlexOlmoCli
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
            InitModelCommand.Create(),
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
            ImportExpertCommand.Create(),
            ExportExpertCommand.Create(),
            DecomposeCommand.Create(),
            SoupCommand.Create(),
            SelectProxyCommand.Create(),
            TuneRouterCommand.Create(),
            EvalCommand.Create(),
            AuditExtractionCommand.Create(),
            DemoCommand.Create(),
            StudyCommand.Create(),
            ServeCommand.Create(),
        })
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    /// <summary>Exit code of a command line that does not parse (unknown option, missing or malformed value).</summary>
    public const int UsageError = 2;

    /// <summary>
    /// Parses and runs. A command line that does not parse prints one line naming every problem and exits with
    /// <see cref="UsageError"/>; user errors while running print one line and exit with 1.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var parseResult = BuildRoot().Parse(args);
        if (RefuseUsage(parseResult, error) is { } refused)
        {
            return refused;
        }

        // The executable turns Ctrl-C and SIGTERM into this token (InterruptSignals); System.CommandLine installs no
        // handler of its own, as with it a real SIGINT killed the process before any checkpoint was written.
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
        return await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One line for a command line that does not parse, or that gives an option or argument an empty value (no option
    /// takes one; an empty path would otherwise mean the current folder). Help requests are left to print help.
    /// </summary>
    private static int? RefuseUsage(ParseResult parseResult, TextWriter error)
    {
        if (parseResult.Action is System.CommandLine.Help.HelpAction)
        {
            return null;
        }

        var empty = EmptyValues(parseResult.RootCommandResult).FirstOrDefault();
        if (parseResult.Errors.Count == 0 && empty is null)
        {
            return null;
        }

        var names = new List<string>();
        for (SymbolResult? result = parseResult.CommandResult; result is CommandResult { Command: not RootCommand } command; result = command.Parent)
        {
            names.Insert(0, command.Command.Name);
        }

        var name = string.Join(' ', names.Prepend("flexolmo"));
        var problems = string.Join(" ", parseResult.Errors.Select(e => e.Message.Trim().TrimEnd('.') + ".").Append(empty is null ? null : $"{empty} is given an empty value.").OfType<string>().Distinct());
        error.WriteLine($"error: {Format.OneLine(problems)} See '{name} --help'.");
        return UsageError;
    }

    /// <summary>The options and arguments given an empty or blank value anywhere on the command line.</summary>
    private static IEnumerable<string> EmptyValues(SymbolResult result)
    {
        switch (result)
        {
            case OptionResult option when option.Tokens.Any(t => string.IsNullOrWhiteSpace(t.Value)):
                yield return option.Option.Name;
                break;
            case ArgumentResult argument when argument.Tokens.Any(t => string.IsNullOrWhiteSpace(t.Value)):
                yield return argument.Argument.Name;
                break;
            case CommandResult command:
                foreach (var child in command.Children.SelectMany(EmptyValues))
                {
                    yield return child;
                }

                break;
        }
    }
}
