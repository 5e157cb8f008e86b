using FlexOlmo.Formats;

namespace FlexOlmo.Core.Tokenization;

/// <summary>No tokenizer is available for a model, or a tokenizer file is malformed or unsupported.</summary>
public sealed class TokenizerException(string message) : FlexOlmoException(message);
