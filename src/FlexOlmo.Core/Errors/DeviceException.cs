using FlexOlmo.Formats;

namespace FlexOlmo.Core.Errors;

/// <summary>A device or dtype was asked for that this process cannot provide (for example CUDA without a GPU).</summary>
public sealed class DeviceException(string message) : FlexOlmoException(message);
