using System.Security.Cryptography;

namespace FlexOlmo.Formats;

/// <summary>
/// A write-only stream that feeds every byte to a hash and passes it on to another stream (or nowhere), so a file's
/// digest is known when it has been written, without reading it back.
/// </summary>
public sealed class HashingStream(IncrementalHash hash, Stream? inner = null) : WriteOnlyStream
{
    public override void Flush() => inner?.Flush();

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        hash.AppendData(buffer);
        inner?.Write(buffer);
    }
}
