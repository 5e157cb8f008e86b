namespace FlexOlmo.Data;

/// <summary>A run of token ids stored in a file: where it starts, how many, and 2 or 4 bytes each (little-endian).</summary>
public sealed record TokenSource(string Path, long ByteOffset, long Tokens, int ElementSize, long Documents);
