using System.Text.Json.Nodes;

namespace FlexOlmo.Packages;

/// <summary>Signs and checks the "signature" field of a manifest or revocation record.</summary>
public static class ManifestSignature
{
    /// <summary>Adds (or replaces) the signature of <paramref name="document"/> with <paramref name="key"/>.</summary>
    public static void Sign(JsonObject document, SigningKey key)
    {
        document.Remove("signature");
        var value = key.Sign(CanonicalJson.Bytes(document));
        document["signature"] = new JsonObject
        {
            ["algorithm"] = SigningKey.Algorithm,
            ["key_fingerprint"] = key.Fingerprint,
            ["public_key"] = key.PublicKey,
            ["value"] = value,
        };
    }

    /// <summary>The fingerprint of the key that signed <paramref name="document"/>, or null when unsigned.</summary>
    public static string? SignedBy(JsonObject document) => document["signature"]?["key_fingerprint"]?.GetValue<string>();

    /// <summary>
    /// Checks a signature against the public key it carries (integrity, not trust). Returns the signer's fingerprint,
    /// or null when the document is unsigned; throws when the signature is present but wrong.
    /// </summary>
    public static string? VerifyIntegrity(JsonObject document, string source)
    {
        if (document["signature"] is not JsonObject signature)
        {
            return null;
        }

        using var key = SigningKey.FromPublicKey(signature["public_key"]?.GetValue<string>() ?? string.Empty)
            ?? throw new PackageException($"{source}: its signature carries no valid P-256 public key.");
        if (key.Fingerprint != signature["key_fingerprint"]?.GetValue<string>() || !key.Verify(CanonicalJson.Bytes(document), signature["value"]?.GetValue<string>() ?? string.Empty))
        {
            throw new PackageException($"{source}: its signature does not match its content or its key: the document was changed after signing, or the signature is forged.");
        }

        return key.Fingerprint;
    }

    /// <summary>
    /// Checks the signature against the trusted keys. Returns the signer's fingerprint. Throws when the document is
    /// unsigned, signed by a key not in <paramref name="trusted"/>, or the signature does not match its content.
    /// </summary>
    public static string Verify(JsonObject document, IReadOnlyCollection<SigningKey> trusted, string source)
    {
        if (document["signature"] is not JsonObject signature)
        {
            throw new PackageException($"{source}: is not signed, but a trusted key is required. Ask its owner to publish it with --sign-key.");
        }

        var fingerprint = signature["key_fingerprint"]?.GetValue<string>();
        var key = trusted.FirstOrDefault(k => k.Fingerprint == fingerprint)
            ?? throw new PackageException($"{source}: is signed by key {fingerprint}, which is not among the trusted keys ({string.Join(", ", trusted.Select(k => k.Fingerprint))}).");
        var value = signature["value"]?.GetValue<string>() ?? string.Empty;
        if (!key.Verify(CanonicalJson.Bytes(document), value))
        {
            throw new PackageException($"{source}: its signature does not match its content: the manifest was changed after signing, or the signature is forged.");
        }

        return key.Fingerprint;
    }
}
