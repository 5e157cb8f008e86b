using System.Runtime.InteropServices;

namespace FlexOlmo.Cli;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM for the executable: the first cancels the command's token, so that long jobs stop
/// after their current step (or layer) and save a checkpoint; a second one stops the process at once.
/// </summary>
internal static class InterruptSignals
{
    public static IDisposable Register(CancellationTokenSource interrupt, TextWriter error)
    {
        var signals = 0;
        void OnSignal(PosixSignalContext context)
        {
            if (Interlocked.Increment(ref signals) == 1)
            {
                context.Cancel = true;
                error.WriteLine($"{context.Signal}: stopping after the current step; send it again to stop at once.");
                interrupt.Cancel();
            }
        }

        return new Registrations(PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal), PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal));
    }

    private sealed class Registrations(params IDisposable[] registrations) : IDisposable
    {
        public void Dispose()
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }
    }
}
