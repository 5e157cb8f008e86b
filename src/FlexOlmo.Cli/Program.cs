using FlexOlmo.Cli;

return await FlexOlmoCli.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
