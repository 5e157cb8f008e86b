namespace FlexOlmo.Formats;

/// <summary>
/// The user's FlexOlmo folder: <c>$FLEXOLMO_HOME</c>, else <c>~/.flexolmo</c>. It holds the default registry and the
/// revocations this machine has seen (which are never forgotten).
/// </summary>
public static class FlexOlmoHome
{
    public const string Variable = "FLEXOLMO_HOME";

    public static string Path =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } custom
            ? System.IO.Path.GetFullPath(custom)
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".flexolmo");
}
