namespace FlexOlmo.Registry;

/// <summary>What a manifest's signature shows.</summary>
public enum SignatureStatus
{
    Unsigned,

    /// <summary>Signed, and the signature matches the content and the key it carries.</summary>
    Valid,

    /// <summary>Signed, but the signature does not match: the manifest was changed after signing, or forged.</summary>
    Invalid,
}

/// <summary>
/// How far an expert's origin was checked: <see cref="Trusted"/> when its signature was verified against keys the user
/// trusts; otherwise it is unverified (a signature only shows integrity against the key it carries, and a stripped
/// signature cannot be told from an unsigned expert), and <see cref="Warning"/> says so plainly.
/// </summary>
public sealed record ExpertVerification(string Reference, string? Signer, bool Trusted)
{
    public string? Warning => Trusted
        ? null
        : Signer is null
            ? $"{Reference} is UNSIGNED and UNVERIFIED: nothing shows who published it or that it was not changed. Give the owners' public keys (--trusted-key, or trusted_keys in a recipe) to require their signatures."
            : $"{Reference} is UNVERIFIED: it carries a signature by {Signer}, but no trusted keys were given, so nothing shows that this is its owner's key (or that another signature was not stripped). Give the owners' public keys (--trusted-key, or trusted_keys in a recipe).";
}
