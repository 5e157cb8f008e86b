using static TorchSharp.torch;

namespace FlexOlmo.Training.Embedding;

// H=model width, d=embedder width

/// <summary>
/// Maps an external embedder's vector to the model width with a seeded random orthogonal projection (QR of a
/// Gaussian matrix), which keeps inner products (d &lt;= H) or is a random orthogonal subspace (d &gt; H).
/// </summary>
internal static class OrthogonalProjection
{
    public static float[] Project(float[] vector, int targetWidth, long seed)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed, CPU);
        var rows = Math.Max(targetWidth, vector.Length);
        var cols = Math.Min(targetWidth, vector.Length);
        var gaussian = randn([rows, cols], ScalarType.Float64, generator: generator); // [max, min]
        var (q, r) = linalg.qr(gaussian); // q [max, min] with orthonormal columns
        q = q * r.diagonal().sign().unsqueeze(0); // unique up to sign: fix it so the seed decides
        var projection = targetWidth >= vector.Length ? q : q.t(); // [H, d]
        var v = tensor(vector.Select(x => (double)x).ToArray(), ScalarType.Float64); // [d]
        var result = projection.matmul(v).to(ScalarType.Float32); // [H]
        return result.data<float>().ToArray();
    }
}
