using FlexOlmo.Training;

namespace FlexOlmo.Testing;

/// <summary>Cancels training once a step is reported (as Ctrl-C would).</summary>
public sealed class StopAtStep(long step, CancellationTokenSource source) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        if (value.Step >= step)
        {
            source.Cancel();
        }
    }
}
