namespace FlexOlmo.Testing;

/// <summary>Where the repository, the shared fixtures and scratch folders are.</summary>
public static class TestPaths
{
    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    /// <summary>The folder holding FlexOlmo.sln.</summary>
    public static string RepositoryRoot => Root.Value;

    /// <summary>../shared beside the checkout (or $FLEXOLMO_SHARED).</summary>
    public static string Shared =>
        Environment.GetEnvironmentVariable("FLEXOLMO_SHARED") is { Length: > 0 } custom ? custom : Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));

    /// <summary>The Hugging Face golden fixtures written by transformers.</summary>
    public static string HfReference => Path.Combine(Shared, "fixtures", "hf-reference");

    public static string Fixture(string name)
    {
        var path = Path.Combine(HfReference, name);
        if (!Directory.Exists(path))
        {
            throw new DirectoryNotFoundException($"Golden fixture {path} is missing: the tests need ../shared/fixtures/hf-reference beside the checkout (or FLEXOLMO_SHARED).");
        }

        return path;
    }

    private static string FindRepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "FlexOlmo.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new DirectoryNotFoundException($"No FlexOlmo.sln above {AppContext.BaseDirectory}.");
    }
}
