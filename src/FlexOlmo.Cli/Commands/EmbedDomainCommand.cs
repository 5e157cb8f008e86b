using System.CommandLine;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
using FlexOlmo.Packages;
using FlexOlmo.Training.Embedding;

namespace FlexOlmo.Cli.Commands;

/// <summary>
/// <c>flexolmo embed-domain --anchor DIR (--data PATH... | --vector FILE) --out FILE</c>: a router embedding for a
/// domain, from the anchor's mean-pooled hidden states over sampled documents, or from an external embedder's
/// vector (projected to the model width when it differs).
/// </summary>
internal static class EmbedDomainCommand
{
    private static readonly Option<string> Anchor = new("--anchor") { Description = "Anchor folder.", Required = true };
    private static readonly Option<string[]> Data = new("--data") { Description = "Documents of the domain.", AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string?> Vector = new("--vector") { Description = "An external embedder's vector (.npy, .safetensors, .json) to project and record instead." };
    private static readonly Option<string> Out = new("--out") { Description = "Output .safetensors file (usable as --router-embedding).", Required = true };
    private static readonly Option<int> Samples = new("--samples") { Description = "Documents sampled.", DefaultValueFactory = _ => 1000 };
    private static readonly Option<int> SeqLen = new("--seq-len") { Description = "Tokens of each document embedded.", DefaultValueFactory = _ => 2048 };
    private static readonly Option<long> Seed = new("--seed") { DefaultValueFactory = _ => 0L };
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("embed-domain", "Compute a domain's router embedding (the mean embedding of sampled documents).")
        {
            Anchor, Data, Vector, Out, Samples, SeqLen, Seed, Device, DType, TokenCacheFolder,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var anchor = AnchorPackage.Open(context.Get(Anchor));
        var config = ModelConfig.Load(anchor.ModelFolder);
        var vectorPath = context.Get(Vector);
        var data = context.Get(Data) ?? [];
        if ((vectorPath is null) == (data.Length == 0))
        {
            throw new FlexOlmoException("Give --data (documents to embed) or --vector (an external embedding), not both.");
        }

        var (embedding, provenance) = vectorPath is not null
            ? RouterEmbeddingSource.FromFile(vectorPath, config.HiddenSize, context.Get(Seed))
            : RouterEmbeddingSource.FromDocuments(
                anchor.ModelFolder, data, context.Get(Samples), context.Get(SeqLen), context.Get(Seed), context.Get(Device), context.Get(DType), context.Get(TokenCacheFolder),
                new SyncProgress<string>(l => context.Error.WriteLine(l)), context.CancellationToken);
        RouterEmbeddingFile.Write(context.Get(Out), embedding, provenance);
        context.Output.WriteLine(Format.Invariant($"router embedding ({embedding.Length} values, norm {Math.Sqrt(embedding.Sum(v => (double)v * v)):0.000}, {provenance.Method}) written to {context.Get(Out)}"));
        return 0;
    }
}
