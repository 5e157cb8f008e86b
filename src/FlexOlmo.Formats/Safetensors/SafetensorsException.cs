namespace FlexOlmo.Formats.Safetensors;

/// <summary>A safetensors file or index is malformed or hostile. The message names the file and the problem.</summary>
public sealed class SafetensorsException(string message) : FlexOlmoException(message);
