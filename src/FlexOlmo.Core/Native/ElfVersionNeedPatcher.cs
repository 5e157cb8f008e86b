using System.Buffers.Binary;
using System.Text;

namespace FlexOlmo.Core.Native;

/// <summary>
/// Marks one required symbol version of an ELF64 shared library as weak (VER_FLG_WEAK), so that the
/// dynamic loader only warns when the system library lacks it.
/// </summary>
/// <remarks>
/// Written by hand because no served package edits ELF version-need entries. It exists for one case:
/// TorchSharp 0.107's libLibTorchSharp.so records a need for GLIBCXX_3.4.32 only through the link-time
/// marker <c>_ZSt21ios_base_library_initv</c>, which nothing calls, and Debian 12 / Ubuntu 22.04 stop at
/// GLIBCXX_3.4.30. The patch refuses any version that a real symbol needs. Every offset read from the
/// file is checked against the file's length before use.
/// </remarks>
internal static class ElfVersionNeedPatcher
{
    private const uint ShtDynsym = 11;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;
    private const ushort VerFlagWeak = 0x2;

    /// <summary>Symbols that only mark a link-time dependency and are never called.</summary>
    private static readonly HashSet<string> MarkerSymbols = new(StringComparer.Ordinal) { "_ZSt21ios_base_library_initv" };

    /// <summary>Returns a copy of <paramref name="elf"/> in which <paramref name="versionName"/> is a weak need.</summary>
    /// <exception cref="NativeLibraryException">The file is not ELF64, lacks the version, or a real symbol needs it.</exception>
    public static byte[] MarkVersionWeak(ReadOnlySpan<byte> elf, string versionName, string fileForMessages)
    {
        var image = elf.ToArray();
        var span = image.AsSpan();
        if (span.Length < 64 || span[0] != 0x7f || span[1] != (byte)'E' || span[2] != (byte)'L' || span[3] != (byte)'F'
            || span[4] != 2 || span[5] != 1)
        {
            throw new NativeLibraryException($"{fileForMessages}: not a little-endian ELF64 file; cannot patch its symbol versions.");
        }

        var sectionOffset = ReadU64(span, 0x28, fileForMessages);
        var sectionEntrySize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        var sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);
        if (sectionEntrySize < 64 || sectionOffset + ((ulong)sectionEntrySize * sectionCount) > (ulong)span.Length)
        {
            throw new NativeLibraryException($"{fileForMessages}: section header table lies outside the file.");
        }

        var sections = new List<Section>(sectionCount);
        for (var i = 0; i < sectionCount; i++)
        {
            var header = span.Slice((int)sectionOffset + (i * sectionEntrySize), 64);
            var section = new Section(
                Type: BinaryPrimitives.ReadUInt32LittleEndian(header[4..]),
                Offset: BinaryPrimitives.ReadUInt64LittleEndian(header[24..]),
                Size: BinaryPrimitives.ReadUInt64LittleEndian(header[32..]),
                Link: BinaryPrimitives.ReadUInt32LittleEndian(header[40..]),
                Info: BinaryPrimitives.ReadUInt32LittleEndian(header[44..]));
            if (section.Type != 8 /* SHT_NOBITS */ && section.Offset + section.Size > (ulong)span.Length)
            {
                throw new NativeLibraryException($"{fileForMessages}: section {i} lies outside the file.");
            }

            sections.Add(section);
        }

        var verneed = sections.FindIndex(s => s.Type == ShtGnuVerneed);
        if (verneed < 0)
        {
            throw new NativeLibraryException($"{fileForMessages}: has no version-need section; nothing to patch.");
        }

        var needSection = sections[verneed];
        var strings = SectionAt(sections, (int)needSection.Link, fileForMessages);
        ushort? versionIndex = null;
        var entryOffset = needSection.Offset;
        for (var entry = 0u; entry < needSection.Info; entry++)
        {
            CheckRange(span, entryOffset, 16, fileForMessages);
            var auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(entryOffset + 2)..]);
            var auxOffset = entryOffset + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(entryOffset + 8)..]);
            for (var a = 0; a < auxCount; a++)
            {
                CheckRange(span, auxOffset, 16, fileForMessages);
                var name = ReadString(span, strings, BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(auxOffset + 8)..]), fileForMessages);
                if (name == versionName)
                {
                    var flagsAt = (int)(auxOffset + 4);
                    var flags = BinaryPrimitives.ReadUInt16LittleEndian(span[flagsAt..]);
                    BinaryPrimitives.WriteUInt16LittleEndian(span[flagsAt..], (ushort)(flags | VerFlagWeak));
                    versionIndex = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(auxOffset + 6)..]) & 0x7fff);
                }

                var nextAux = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(auxOffset + 12)..]);
                if (nextAux == 0)
                {
                    break;
                }

                auxOffset += nextAux;
            }

            var next = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(entryOffset + 12)..]);
            if (next == 0)
            {
                break;
            }

            entryOffset += next;
        }

        if (versionIndex is null)
        {
            throw new NativeLibraryException($"{fileForMessages}: does not need {versionName}; nothing to patch.");
        }

        EnsureOnlyMarkersNeed(span, sections, versionIndex.Value, versionName, fileForMessages);
        return image;
    }

    private static void EnsureOnlyMarkersNeed(ReadOnlySpan<byte> span, List<Section> sections, ushort versionIndex, string versionName, string file)
    {
        var dynsymIndex = sections.FindIndex(s => s.Type == ShtDynsym);
        var versymIndex = sections.FindIndex(s => s.Type == ShtGnuVersym);
        if (dynsymIndex < 0 || versymIndex < 0)
        {
            throw new NativeLibraryException($"{file}: has no dynamic symbol versions; refusing to patch blind.");
        }

        var dynsym = sections[dynsymIndex];
        var versym = sections[versymIndex];
        var names = SectionAt(sections, (int)dynsym.Link, file);
        var count = dynsym.Size / 24;
        if (versym.Size < count * 2)
        {
            throw new NativeLibraryException($"{file}: symbol version table is shorter than the symbol table.");
        }

        for (var i = 0ul; i < count; i++)
        {
            var version = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(versym.Offset + (i * 2))..]) & 0x7fff);
            if (version != versionIndex)
            {
                continue;
            }

            var nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(dynsym.Offset + (i * 24))..]);
            var symbol = ReadString(span, names, nameOffset, file);
            if (!MarkerSymbols.Contains(symbol))
            {
                throw new NativeLibraryException(
                    $"{file}: symbol '{symbol}' needs {versionName}, which this system's libstdc++ lacks. " +
                    "Install a newer libstdc++ (GCC 13 or later) or point --libtorch at a matching libtorch build.");
            }
        }
    }

    private static Section SectionAt(List<Section> sections, int index, string file) =>
        index >= 0 && index < sections.Count ? sections[index] : throw new NativeLibraryException($"{file}: section link {index} is out of range.");

    private static string ReadString(ReadOnlySpan<byte> span, Section table, uint offset, string file)
    {
        if (offset >= table.Size)
        {
            throw new NativeLibraryException($"{file}: string offset {offset} is outside its table.");
        }

        var start = (int)(table.Offset + offset);
        var rest = span.Slice(start, (int)(table.Size - offset));
        var end = rest.IndexOf((byte)0);
        if (end < 0)
        {
            throw new NativeLibraryException($"{file}: unterminated string in a string table.");
        }

        return Encoding.ASCII.GetString(rest[..end]);
    }

    private static ulong ReadU64(ReadOnlySpan<byte> span, int at, string file) =>
        at + 8 <= span.Length ? BinaryPrimitives.ReadUInt64LittleEndian(span[at..]) : throw new NativeLibraryException($"{file}: truncated ELF header.");

    private static void CheckRange(ReadOnlySpan<byte> span, ulong offset, ulong length, string file)
    {
        if (offset + length > (ulong)span.Length)
        {
            throw new NativeLibraryException($"{file}: version-need entry at {offset} lies outside the file.");
        }
    }

    private readonly record struct Section(uint Type, ulong Offset, ulong Size, uint Link, uint Info);
}
