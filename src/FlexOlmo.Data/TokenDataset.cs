using System.IO.MemoryMappedFiles;

namespace FlexOlmo.Data;

/// <summary>
/// The concatenation of several token sources, memory-mapped and read on demand, cut into fixed-length instances
/// of <c>seqLen + 1</c> tokens (inputs and shifted labels) with a stride of <c>seqLen</c>.
/// </summary>
public sealed class TokenDataset : IDisposable
{
    private readonly List<(TokenSource Source, MemoryMappedFile Map, MemoryMappedViewAccessor View, long Start)> _parts = [];
    private readonly int _vocabSize;

    public TokenDataset(IReadOnlyList<TokenSource> sources, int vocabSize)
    {
        _vocabSize = vocabSize;
        long start = 0;
        foreach (var source in sources.Where(s => s.Tokens > 0))
        {
            var map = MemoryMappedFile.CreateFromFile(source.Path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = map.CreateViewAccessor(source.ByteOffset, source.Tokens * source.ElementSize, MemoryMappedFileAccess.Read);
            _parts.Add((source, map, view, start));
            start += source.Tokens;
        }

        TotalTokens = start;
        Documents = sources.Sum(s => s.Documents);
    }

    public long TotalTokens { get; }

    public long Documents { get; }

    /// <summary>Instances of <paramref name="seqLen"/> + 1 tokens that fit.</summary>
    public long InstanceCount(int seqLen) => TotalTokens > seqLen ? (TotalTokens - 1) / seqLen : 0;

    /// <summary>Reads tokens [start, start + destination.Length) across source boundaries, checking each id against the vocabulary.</summary>
    public void Read(long start, Span<long> destination)
    {
        var index = _parts.FindLastIndex(p => p.Start <= start);
        var position = start;
        var written = 0;
        while (written < destination.Length)
        {
            if (index < 0 || index >= _parts.Count)
            {
                throw new ArgumentOutOfRangeException(nameof(start), $"tokens {start}..{start + destination.Length} are beyond the dataset ({TotalTokens}).");
            }

            var (source, _, view, partStart) = _parts[index];
            var offset = position - partStart;
            var count = (int)Math.Min(destination.Length - written, source.Tokens - offset);
            for (var i = 0; i < count; i++)
            {
                long id = source.ElementSize == 4
                    ? view.ReadUInt32((offset + i) * 4)
                    : view.ReadUInt16((offset + i) * 2);
                if (id >= _vocabSize)
                {
                    throw new DataException($"{source.Path}: token id {id} at position {offset + i} is outside the vocabulary (0..{_vocabSize - 1}); the shard was made for another tokenizer, or --token-dtype is wrong.");
                }

                destination[written + i] = id;
            }

            written += count;
            position += count;
            index++;
        }
    }

    /// <summary>Instance <paramref name="index"/>: seqLen + 1 tokens starting at index * seqLen.</summary>
    public void ReadInstance(long index, int seqLen, Span<long> destination) => Read(index * seqLen, destination[..(seqLen + 1)]);

    public void Dispose()
    {
        foreach (var (_, map, view, _) in _parts)
        {
            view.Dispose();
            map.Dispose();
        }
    }
}
