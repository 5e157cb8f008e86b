using FlexOlmo.Formats;

namespace FlexOlmo.Composition;

/// <summary>A recipe is invalid or names something unusable; the message reads "FILE:LINE: field: problem".</summary>
public sealed class RecipeException(string message) : FlexOlmoException(message);
