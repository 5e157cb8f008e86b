using FlexOlmo.Formats;

namespace FlexOlmo.Core.Modeling;

/// <summary>An expert selection names an unknown expert, leaves none, or mixes include and exclude.</summary>
public sealed class ExpertMaskException(string message) : FlexOlmoException(message);
