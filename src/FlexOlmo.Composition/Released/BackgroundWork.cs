namespace FlexOlmo.Composition.Released;

/// <summary>
/// Work (such as a digest of the files being copied) that runs on another core while the caller streams the same
/// files. Disposing it before its result is taken stops it and waits for it, so the files it reads are never closed
/// under it and no failure goes unobserved.
/// </summary>
internal sealed class BackgroundWork<T> : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly Task<T> _task;

    public BackgroundWork(Func<CancellationToken, T> work, CancellationToken cancellationToken)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = _stop.Token;
        _task = Task.Run(() => work(token), token);
    }

    /// <summary>The result, once the work is done (its exception, if it failed).</summary>
    public T Result => _task.GetAwaiter().GetResult();

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _task.Wait();
        }
        catch (AggregateException)
        {
            // Stopped or failed after the caller no longer needed it (a caller that needed it got the error from Result).
        }

        _stop.Dispose();
    }
}
