using FlexOlmo.Formats;

namespace FlexOlmo.Core.Native;

/// <summary>libtorch or TorchSharp's native library could not be found, patched or loaded.</summary>
public sealed class NativeLibraryException(string message) : FlexOlmoException(message);
