using System.Runtime.InteropServices;

namespace FlexOlmo.Core.Native;

/// <summary>
/// The environment that native code reads (libc's <c>getenv</c>). .NET keeps its own copy of the environment on Unix,
/// so a variable meant for libgomp or libtorch must be set through libc's <c>setenv</c>, before the library reads it.
/// </summary>
internal static partial class NativeEnvironment
{
    /// <summary>The value native code sees, which can differ from .NET's copy of the environment.</summary>
    public static string? Get(string name) => Marshal.PtrToStringUTF8(GetEnvironment(name));

    /// <summary>Whether the user set <paramref name="name"/> to something (their setting then wins over any policy here).</summary>
    public static bool IsSet(string name) =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name)) || !string.IsNullOrEmpty(Get(name));

    /// <summary>Sets <paramref name="name"/> for native code unless it is already set; whether it now holds <paramref name="value"/>.</summary>
    public static bool SetUnlessPresent(string name, string value) =>
        SetEnvironment(name, value, 0) == 0 && Get(name) == value;

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnvironment(string name);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnvironment(string name, string value, int overwrite);
}
