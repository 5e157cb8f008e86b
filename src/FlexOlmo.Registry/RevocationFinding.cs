namespace FlexOlmo.Registry;

/// <summary>Why an expert counts as revoked.</summary>
public enum RevocationBasis
{
    /// <summary>A record signed by the key that signed the expert.</summary>
    Owner,

    /// <summary>The expert is unsigned: any record withdraws it, and nobody can tell who wrote it.</summary>
    UnsignedExpert,

    /// <summary>A record exists but could not be read or verified: the check fails closed.</summary>
    Unverifiable,
}

/// <summary>A revocation that applies to an expert, with the words that say truthfully what is known of it.</summary>
public sealed record RevocationFinding(
    string Reference,
    RevocationBasis Basis,
    string Reason,
    DateTimeOffset? RevokedAt,
    string? RevokedBy,
    string Source,
    bool Remembered = false,
    string? Detail = null)
{
    public string Message
    {
        get
        {
            var when = RevokedAt is { } at ? $" on {at:yyyy-MM-dd}" : string.Empty;
            var text = Basis switch
            {
                RevocationBasis.Owner => $"{Reference} was revoked by its owner (key {RevokedBy}){when}: {Reason}. It may no longer be used.",
                RevocationBasis.UnsignedExpert =>
                    $"{Reference} was withdrawn{when} ({Reason}) by {(RevokedBy is null ? "an unsigned record" : $"key {RevokedBy}")}. The expert is unsigned, so nobody can tell " +
                    "whether its owner did this (anyone who may write to the registry can withdraw an unsigned expert). It may no longer be used.",
                _ => $"{Reference}: a revocation record at {Source} could not be verified ({Reason}). Until it is resolved, the expert counts as revoked.",
            };
            if (Detail is not null)
            {
                text += $" {Detail}";
            }

            return Remembered ? $"{text} (remembered on this machine from {Source}: a revocation once seen is never forgotten, even when the registry no longer shows it)" : text;
        }
    }
}
