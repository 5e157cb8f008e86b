using FlexOlmo.Formats;

namespace FlexOlmo.Evaluation;

/// <summary>An evaluation cannot run: an unknown model folder, a bad mask or domain, data too short for the window.</summary>
public sealed class EvaluationException(string message) : FlexOlmoException(message);
