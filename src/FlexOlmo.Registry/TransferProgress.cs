namespace FlexOlmo.Registry;

/// <summary>Bytes moved so far for one file of a publish or pull (reported as they move).</summary>
public sealed record TransferProgress(string File, long Done, long Total, bool Skipped = false);
