using System.Text;
using System.Text.RegularExpressions;

namespace FlexOlmo.Training.Data;

/// <summary>
/// Pre-tokenised shards as OLMo-core writes them: flat arrays of uint16 or uint32 ids, as raw memmap files (.npy or
/// .bin without a header) or .npy files with a NumPy header. Documents are separated by EOS inside the stream.
/// </summary>
public static partial class TokenShard
{
    private static readonly byte[] NpyMagic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <param name="rawElementSize">Bytes per id for files without a header (2 or 4).</param>
    public static TokenSource Open(string path, int rawElementSize)
    {
        var length = new FileInfo(path).Length;
        using var stream = File.OpenRead(path);
        var prefix = new byte[Math.Min(10, length)];
        stream.ReadExactly(prefix);
        if (prefix.AsSpan().StartsWith(NpyMagic) && prefix.Length == 10)
        {
            var major = prefix[6];
            int headerLength;
            long dataStart;
            if (major == 1)
            {
                headerLength = prefix[8] | (prefix[9] << 8);
                dataStart = 10 + headerLength;
            }
            else
            {
                var more = new byte[2];
                stream.ReadExactly(more);
                headerLength = prefix[8] | (prefix[9] << 8) | (more[0] << 16) | (more[1] << 24);
                dataStart = 12 + (long)headerLength;
            }

            if (headerLength <= 0 || headerLength > 65536 || dataStart > length)
            {
                throw new TrainingException($"{path}: malformed NumPy header (length {headerLength}).");
            }

            stream.Position = dataStart - headerLength;
            var header = new byte[headerLength];
            stream.ReadExactly(header);
            var text = Encoding.ASCII.GetString(header);
            var descr = DescrPattern().Match(text);
            if (!descr.Success || text.Contains("'fortran_order': True", StringComparison.Ordinal))
            {
                throw new TrainingException($"{path}: NumPy header must describe a C-ordered uint16 or uint32 array (got {text.Trim()}).");
            }

            var size = descr.Groups[1].Value switch
            {
                "u2" => 2,
                "u4" => 4,
                _ => throw new TrainingException($"{path}: token shards hold uint16 or uint32 ids, not '{descr.Groups[1].Value}'."),
            };
            return Checked(path, dataStart, length - dataStart, size);
        }

        if (rawElementSize is not (2 or 4))
        {
            throw new TrainingException($"--token-dtype must be uint16 or uint32 (got {rawElementSize * 8}-bit).");
        }

        return Checked(path, 0, length, rawElementSize);
    }

    private static TokenSource Checked(string path, long offset, long bytes, int size)
    {
        if (bytes % size != 0)
        {
            throw new TrainingException($"{path}: {bytes} bytes of data is not a whole number of {size}-byte token ids; wrong --token-dtype?");
        }

        return new TokenSource(path, offset, bytes / size, size, Documents: 0);
    }

    [GeneratedRegex(@"'descr':\s*'[<|=]?([ui][1248])'")]
    private static partial Regex DescrPattern();
}
