using FlexOlmo.Formats;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>A checkpoint does not fit its config: missing, unexpected or mis-shaped tensors.</summary>
public sealed class CheckpointException(string message) : FlexOlmoException(message);
