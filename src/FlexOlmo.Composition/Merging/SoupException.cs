using FlexOlmo.Formats;

namespace FlexOlmo.Composition.Merging;

/// <summary>A soup that cannot be made: the message names the option or file, and the fix.</summary>
public sealed class SoupException(string message) : FlexOlmoException(message);
