using FlexOlmo.Formats;

namespace FlexOlmo.Registry;

/// <summary>A registry operation was refused or failed: the message names the registry, the expert and what to do.</summary>
public class RegistryException(string message) : FlexOlmoException(message);

/// <summary>An object in the registry is larger than anything of its kind may be.</summary>
public sealed class RegistryObjectTooLargeException(string message) : RegistryException(message);
