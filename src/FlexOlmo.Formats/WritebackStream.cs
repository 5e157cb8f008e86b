using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FlexOlmo.Formats;

/// <summary>
/// A file stream decorator that has the kernel start writing each completed 32 MiB to disk, from a background task,
/// while the writer goes on: a large write's disk time then overlaps its copying and hashing instead of all waiting
/// for the final fsync, and the writer itself never waits on the disk queue. Written by hand because .NET has no
/// call for it: on Linux it is sync_file_range with SYNC_FILE_RANGE_WRITE (durability still comes from the fsync at
/// the end); elsewhere bytes only pass through.
/// </summary>
internal sealed partial class WritebackStream(FileStream inner) : WriteOnlyStream
{
    private const long Window = 32L << 20;
    private const uint SyncFileRangeWrite = 2;

    private long _written;
    private long _started;
    private Task _pending = Task.CompletedTask;
    private volatile bool _unsupported = !OperatingSystem.IsLinux();

    public override void Flush() => inner.Flush();

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        _written += buffer.Length;
        if (_unsupported || _written - _started < Window || !_pending.IsCompleted)
        {
            return; // a range still being submitted: the next one will cover these bytes too
        }

        inner.Flush(); // the kernel must have the bytes before it can write them
        var (handle, start, length) = (inner.SafeFileHandle, _started, _written - _started);
        _started = _written;
        _pending = Task.Run(() => StartWriteback(handle, start, length));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _pending.GetAwaiter().GetResult(); // never outlive the file handle
        }

        base.Dispose(disposing);
    }

    private void StartWriteback(SafeFileHandle handle, long start, long length)
    {
        try
        {
            // A file system that refuses it (or a libc without it) simply gets no early writeback.
            _unsupported |= SyncFileRange(handle, start, length, SyncFileRangeWrite) != 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or ObjectDisposedException)
        {
            _unsupported = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle fd, long offset, long nbytes, uint flags);
}
