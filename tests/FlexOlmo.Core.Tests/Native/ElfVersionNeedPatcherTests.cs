using FlexOlmo.Core.Native;

namespace FlexOlmo.Core.Tests.Native;

public sealed class ElfVersionNeedPatcherTests
{
    private static string Bridge => Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");

    [Fact]
    public void MarkVersionWeak_ChangesOnlyTheVersionFlags_OfTheMarkerOnlyVersion()
    {
        var original = File.ReadAllBytes(Bridge);
        var patched = ElfVersionNeedPatcher.MarkVersionWeak(original, "GLIBCXX_3.4.32", Bridge);

        Assert.Equal(original.Length, patched.Length);
        var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToList();
        Assert.Single(changed); // one byte of one vna_flags field
        Assert.Equal(original[changed[0]] | 0x2, patched[changed[0]]);
    }

    [Fact]
    public void MarkVersionWeak_Refuses_AVersionThatRealSymbolsNeed()
    {
        var error = Assert.Throws<NativeLibraryException>(() => ElfVersionNeedPatcher.MarkVersionWeak(File.ReadAllBytes(Bridge), "GLIBCXX_3.4", Bridge));
        Assert.Contains("needs GLIBCXX_3.4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MarkVersionWeak_RejectsAFileThatIsNotElf()
    {
        var error = Assert.Throws<NativeLibraryException>(() => ElfVersionNeedPatcher.MarkVersionWeak(new byte[100], "GLIBCXX_3.4.32", "junk.so"));
        Assert.Contains("junk.so", error.Message, StringComparison.Ordinal);
    }
}
