using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace FlexOlmo.Formats.Safetensors;

/// <summary>
/// One safetensors file, memory-mapped: the header is validated on open and each tensor's bytes are read
/// lazily, so a checkpoint larger than memory streams tensor by tensor.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;
    private readonly byte* _base;
    private readonly long _dataStart;
    private bool _disposed;

    private SafetensorsFile(string path, SafetensorsHeader header, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePointer, long dataStart)
    {
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        Path = path;
        Header = header;
        _map = map;
        _view = view;
        _base = basePointer;
        _dataStart = dataStart;
    }

    public string Path { get; }

    public SafetensorsHeader Header { get; }

    /// <summary>Opens and validates a file. Nothing the header claims is allocated before it is checked against the file size.</summary>
    public static SafetensorsFile Open(string path)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafetensorsException($"{path}: cannot open ({e.Message}).");
        }

        using (stream)
        {
            var length = stream.Length;
            if (length < 8)
            {
                throw SafetensorsHeader.Error(path, $"the file has {length} bytes, fewer than the 8-byte header length");
            }

            Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > SafetensorsHeader.MaxHeaderBytes)
            {
                throw SafetensorsHeader.Error(path, $"the header claims {headerLength} bytes, more than the {SafetensorsHeader.MaxHeaderBytes} allowed");
            }

            if ((long)headerLength > length - 8)
            {
                throw SafetensorsHeader.Error(path, $"the header claims {headerLength} bytes but only {length - 8} follow the length prefix");
            }

            if (headerLength < 2)
            {
                throw SafetensorsHeader.Error(path, "the header is empty");
            }

            var json = new byte[headerLength];
            stream.ReadExactly(json);
            var dataStart = 8 + (long)headerLength;
            var header = SafetensorsHeader.Parse(json, length - dataStart, path);
            if (length == dataStart)
            {
                return new SafetensorsFile(path, header, null, null, null, dataStart);
            }

            var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new SafetensorsFile(path, header, map, view, pointer + view.PointerOffset, dataStart);
        }
    }

    public bool Contains(string name) => Header.ByName.ContainsKey(name);

    public SafetensorsTensorInfo Info(string name) =>
        Header.ByName.TryGetValue(name, out var info) ? info : throw new SafetensorsException($"{Path}: has no tensor '{name}'.");

    /// <summary>
    /// The bytes of <paramref name="length"/> bytes starting <paramref name="offset"/> bytes into a tensor.
    /// Valid until the file is disposed.
    /// </summary>
    public ReadOnlySpan<byte> Bytes(SafetensorsTensorInfo tensor, long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || length < 0 || offset + length > tensor.ByteLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{Path}: range {offset}+{length} is outside tensor '{tensor.Name}' ({tensor.ByteLength} bytes).");
        }

        return length == 0 ? [] : new ReadOnlySpan<byte>(_base + _dataStart + tensor.Begin + offset, length);
    }

    /// <summary>
    /// Copies a byte range of a tensor to a stream with plain reads into a pooled buffer: unlike the memory map, this
    /// does not grow the process's resident memory with the size of what is copied.
    /// </summary>
    public void CopyTo(SafetensorsTensorInfo tensor, long offset, long length, Stream destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || length < 0 || offset + length > tensor.ByteLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{Path}: range {offset}+{length} is outside tensor '{tensor.Name}' ({tensor.ByteLength} bytes).");
        }

        const int Chunk = 1 << 22;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            for (long done = 0; done < length; done += Chunk)
            {
                var count = (int)Math.Min(Chunk, length - done);
                var read = RandomAccess.Read(_handle, buffer.AsSpan(0, count), _dataStart + tensor.Begin + offset + done);
                if (read != count)
                {
                    throw new SafetensorsException($"{Path}: ended early while reading '{tensor.Name}'; the file was truncated while open.");
                }

                destination.Write(buffer, 0, count);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads <paramref name="destination"/>.Length bytes of a tensor, starting <paramref name="offset"/> bytes in, with a
    /// plain read (no growth of resident memory).
    /// </summary>
    public void Read(SafetensorsTensorInfo tensor, long offset, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || offset + destination.Length > tensor.ByteLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{Path}: range {offset}+{destination.Length} is outside tensor '{tensor.Name}' ({tensor.ByteLength} bytes).");
        }

        var done = 0;
        while (done < destination.Length)
        {
            var read = RandomAccess.Read(_handle, destination[done..], _dataStart + tensor.Begin + offset + done);
            if (read <= 0)
            {
                throw new SafetensorsException($"{Path}: ended early while reading '{tensor.Name}'; the file was truncated while open.");
            }

            done += read;
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }

        _map?.Dispose();
        _handle.Dispose();
    }
}
