using FlexOlmo.Cli;

using var interrupt = new CancellationTokenSource();
using var signals = InterruptSignals.Register(interrupt, Console.Error);
return await FlexOlmoCli.RunAsync(args, Console.Out, Console.Error, interrupt.Token).ConfigureAwait(false);
