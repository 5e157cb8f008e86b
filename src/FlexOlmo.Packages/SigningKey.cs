using System.Security.Cryptography;

namespace FlexOlmo.Packages;

/// <summary>
/// An owner's ECDSA P-256 key (System.Security.Cryptography). The private key is a PKCS#8 PEM file readable only by
/// its owner; the public key (FILE.pub) is what assemblers list as trusted. A key is known by the SHA-256 of its
/// public key (SubjectPublicKeyInfo).
/// </summary>
public sealed class SigningKey : IDisposable
{
    public const string Algorithm = "ecdsa-p256-sha256";

    private readonly ECDsa _key;

    private SigningKey(ECDsa key, bool hasPrivate)
    {
        _key = key;
        HasPrivateKey = hasPrivate;
        Fingerprint = FileDigest.Of(key.ExportSubjectPublicKeyInfo());
    }

    public string Fingerprint { get; }

    /// <summary>The public key (SubjectPublicKeyInfo, DER) in base64, as signatures carry it.</summary>
    public string PublicKey => Convert.ToBase64String(_key.ExportSubjectPublicKeyInfo());

    public bool HasPrivateKey { get; }

    /// <summary>Creates a key pair: <paramref name="privatePath"/> (mode 600) and <paramref name="privatePath"/>.pub.</summary>
    public static SigningKey Create(string privatePath)
    {
        if (File.Exists(privatePath))
        {
            throw new PackageException($"{privatePath}: already exists; refusing to overwrite a signing key.");
        }

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Formats.AtomicFile.WriteAllText(privatePath, key.ExportPkcs8PrivateKeyPem() + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(privatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        Formats.AtomicFile.WriteAllText(privatePath + ".pub", key.ExportSubjectPublicKeyInfoPem() + "\n");
        return new SigningKey(key, hasPrivate: true);
    }

    /// <summary>A verification-only key from a signature's embedded public key; null when it is not a P-256 key.</summary>
    public static SigningKey? FromPublicKey(string base64)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportSubjectPublicKeyInfo(Convert.FromBase64String(base64), out _);
            if (key.KeySize == 256)
            {
                var signingKey = new SigningKey(key, hasPrivate: false);
                key = null; // the signing key owns it now
                return signingKey;
            }

            return null;
        }
        catch (Exception e) when (e is FormatException or CryptographicException)
        {
            return null;
        }
        finally
        {
            key?.Dispose();
        }
    }

    /// <summary>Loads a private key (to sign) or a public key (to verify) from PEM.</summary>
    public static SigningKey Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new PackageException($"{path}: no such key file. Create one with 'flexolmo keys create --out {path}'.");
        }

        if (new FileInfo(path).Length > 64 * 1024)
        {
            throw new PackageException($"{path}: too large to be a PEM key.");
        }

        var pem = File.ReadAllText(path);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new PackageException($"{path}: not an ECDSA P-256 PEM key ({e.Message}).");
        }

        if (key.KeySize != 256)
        {
            key.Dispose();
            throw new PackageException($"{path}: an ECDSA key of {key.KeySize} bits; FlexOlmo keys are P-256.");
        }

        return new SigningKey(key, pem.Contains("PRIVATE KEY", StringComparison.Ordinal));
    }

    /// <summary>Signs the canonical form of <paramref name="data"/>; returns base64 (IEEE P1363, r||s).</summary>
    public string Sign(byte[] data)
    {
        if (!HasPrivateKey)
        {
            throw new PackageException("This is a public key; signing needs the private key file.");
        }

        return Convert.ToBase64String(_key.SignData(data, HashAlgorithmName.SHA256));
    }

    public bool Verify(byte[] data, string signature)
    {
        try
        {
            return _key.VerifyData(data, Convert.FromBase64String(signature), HashAlgorithmName.SHA256);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public void Dispose() => _key.Dispose();
}
