using FlexOlmo.Formats;

namespace FlexOlmo.Packages;

/// <summary>A package, manifest, signature or revocation is invalid; the message names the file and field.</summary>
public sealed class PackageException(string message) : FlexOlmoException(message);
