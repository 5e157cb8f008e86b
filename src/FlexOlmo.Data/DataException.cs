using FlexOlmo.Formats;

namespace FlexOlmo.Data;

/// <summary>Data or a model folder cannot be used as asked; the message names the file and what to change.</summary>
public sealed class DataException(string message) : FlexOlmoException(message);
