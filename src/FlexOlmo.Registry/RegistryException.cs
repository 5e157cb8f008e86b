using FlexOlmo.Formats;

namespace FlexOlmo.Registry;

/// <summary>A registry operation was refused or failed: the message names the registry, the expert and what to do.</summary>
public sealed class RegistryException(string message) : FlexOlmoException(message);
