using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace FlexOlmo.Packages.Tests;

/// <summary>Signatures cover the canonical content: any change of meaning breaks them, re-formatting does not.</summary>
public sealed class SigningTests
{
    [Fact]
    public void Sign_ThenVerify_NamesTheSigner_AndSurvivesReformattingAndKeyOrder()
    {
        using var temp = new TempDirectory("sign");
        using var key = SigningKey.Create(temp.File("owner.key"));
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        var document = Manifest();
        ManifestSignature.Sign(document, key);
        var reformatted = new JsonObject(document.Reverse().Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone())));

        Assert.Equal(key.Fingerprint, ManifestSignature.Verify(document, [trusted], "m"));
        Assert.Equal(key.Fingerprint, ManifestSignature.VerifyIntegrity(JsonNode.Parse(reformatted.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }))!.AsObject(), "m"));
        Assert.False(trusted.HasPrivateKey);
    }

    [Fact]
    public void AnyChangeOfContent_BreaksTheSignature_AndAStrangersKeyIsNotTrusted()
    {
        using var temp = new TempDirectory("tamper");
        using var owner = SigningKey.Create(temp.File("owner.key"));
        using var stranger = SigningKey.Create(temp.File("stranger.key"));
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        var edited = Manifest();
        ManifestSignature.Sign(edited, owner);
        edited["owner"] = "someone else";
        var foreign = Manifest();
        ManifestSignature.Sign(foreign, stranger);

        Assert.Contains("does not match", Assert.Throws<PackageException>(() => ManifestSignature.VerifyIntegrity(edited, "m")).Message, StringComparison.Ordinal);
        Assert.Contains("does not match", Assert.Throws<PackageException>(() => ManifestSignature.Verify(edited, [trusted], "m")).Message, StringComparison.Ordinal);
        Assert.Contains("not among the trusted keys", Assert.Throws<PackageException>(() => ManifestSignature.Verify(foreign, [trusted], "m")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AStrippedSignature_ReadsAsUnsigned_WhichOnlyTrustedVerificationRefuses()
    {
        using var temp = new TempDirectory("strip");
        using var owner = SigningKey.Create(temp.File("owner.key"));
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        var document = Manifest();
        ManifestSignature.Sign(document, owner);
        var digest = SignedDocument<ExpertManifest>.ContentDigest(document);
        document.Remove("signature");

        Assert.Null(ManifestSignature.VerifyIntegrity(document, "m"));
        Assert.Contains("is not signed", Assert.Throws<PackageException>(() => ManifestSignature.Verify(document, [trusted], "m")).Message, StringComparison.Ordinal);
        Assert.Equal(digest, SignedDocument<ExpertManifest>.ContentDigest(document)); // what a revocation names does not change
    }

    [Fact]
    public void KeyFiles_ArePrivateToTheirOwner_AndOnlyP256PemIsAccepted()
    {
        using var temp = new TempDirectory("keys");
        using (SigningKey.Create(temp.File("owner.key")))
        {
        }

        using var rsa = RSA.Create(2048);
        File.WriteAllText(temp.File("rsa.pem"), rsa.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(temp.File("garbage.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(temp.File("owner.key")));
        }

        Assert.Throws<PackageException>(() => SigningKey.Create(temp.File("owner.key"))); // never overwritten
        Assert.Throws<PackageException>(() => SigningKey.Load(temp.File("rsa.pem")));
        Assert.Throws<PackageException>(() => SigningKey.Load(temp.File("garbage.pem")));
        Assert.Null(SigningKey.FromPublicKey("not base64!"));
        Assert.Null(SigningKey.FromPublicKey(Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo())));
    }

    private static JsonObject Manifest() => new()
    {
        ["format"] = "flexolmo-expert/1",
        ["name"] = "news",
        ["version"] = "1.0.0",
        ["owner"] = "news owner",
        ["files"] = new JsonArray(new JsonObject { ["path"] = "expert.safetensors", ["sha256"] = "sha256:" + new string('0', 64), ["size"] = 10 }),
        ["training"] = new JsonObject { ["lr"] = 0.0009, ["steps"] = 10 },
    };
}
