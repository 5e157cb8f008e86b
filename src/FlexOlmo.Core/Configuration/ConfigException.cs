using FlexOlmo.Formats;

namespace FlexOlmo.Core.Configuration;

/// <summary>A config.json field is missing, mistyped or out of range; the message names the file and field.</summary>
public sealed class ConfigException(string message) : FlexOlmoException(message);
