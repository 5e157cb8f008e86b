using FlexOlmo.Formats;

namespace FlexOlmo.Training;

/// <summary>Training cannot start or continue: bad data, settings that do not fit the model, an incompatible checkpoint.</summary>
public sealed class TrainingException(string message) : FlexOlmoException(message);
