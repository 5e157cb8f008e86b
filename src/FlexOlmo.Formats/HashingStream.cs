using System.Security.Cryptography;

namespace FlexOlmo.Formats;

/// <summary>
/// A write-only stream that feeds every byte to a hash and passes it on to another stream (or nowhere), so a file's
/// digest is known when it has been written, without reading it back.
/// </summary>
public sealed class HashingStream(IncrementalHash hash, Stream? inner = null) : Stream
{
    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush() => inner?.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        hash.AppendData(buffer);
        inner?.Write(buffer);
    }
}
