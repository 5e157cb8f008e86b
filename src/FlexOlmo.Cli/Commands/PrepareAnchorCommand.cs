using System.CommandLine;
using FlexOlmo.Training.Anchors;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo prepare-anchor --model DIR --public-data PATH... --out ANCHOR_DIR</c>.</summary>
internal static class PrepareAnchorCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "A dense OLMo-2 checkpoint folder (Hugging Face format).", Required = true };
    private static readonly Option<string[]> PublicData = new("--public-data") { Description = "Public documents whose mean embedding becomes r_pub.", AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string?> RouterEmbedding = new("--router-embedding") { Description = "A ready-made r_pub vector instead (.safetensors, .npy, .json)." };
    private static readonly Option<string?> RouterEmbeddingFrom = new("--router-embedding-from") { Description = "Take r_pub from row 0 of each layer's router of a 2-expert flex_olmo model built on this one (a released Flex-DOMAIN-2x7B-1T)." };
    private static readonly Option<string> Out = new("--out") { Description = "Anchor folder to create.", Required = true };
    private static readonly Option<string?> Name = new("--name") { Description = "Anchor name (default: the model folder's name)." };
    private static readonly Option<string?> Description = new("--description") { Description = "What the anchor is." };
    private static readonly Option<bool> Reference = new("--reference") { Description = "Refer to the model folder instead of copying it." };
    private static readonly Option<int> Samples = new("--samples") { Description = "Public documents sampled for r_pub.", DefaultValueFactory = _ => 1000 };
    private static readonly Option<int> SeqLen = new("--seq-len") { Description = "Tokens of each document embedded.", DefaultValueFactory = _ => 2048 };
    private static readonly Option<long> Seed = new("--seed") { DefaultValueFactory = _ => 0L, Description = "Seed of the document sample and of any projection." };
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("prepare-anchor", "Make an anchor from a dense OLMo-2 model: the model, its public router embedding r_pub, and a fingerprinted anchor.json.")
        {
            Model, PublicData, RouterEmbedding, RouterEmbeddingFrom, Out, Name, Description, Reference, Samples, SeqLen, Seed, Device, DType, TokenCacheFolder,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var anchor = AnchorBuilder.Prepare(
            new AnchorRequest
            {
                Model = context.Get(Model),
                PublicData = context.Get(PublicData) ?? [],
                RouterEmbedding = context.Get(RouterEmbedding),
                RouterEmbeddingFrom = context.Get(RouterEmbeddingFrom),
                Out = context.Get(Out),
                Name = context.Get(Name),
                Description = context.Get(Description),
                Reference = context.Get(Reference),
                Samples = context.Get(Samples),
                SeqLen = context.Get(SeqLen),
                Seed = context.Get(Seed),
                Device = context.Get(Device),
                DType = context.Get(DType),
                TokenCache = context.Get(TokenCacheFolder),
            },
            new SyncProgress<string>(line => context.Error.WriteLine(line)),
            context.CancellationToken);
        context.Output.WriteLine($"anchor {anchor.Manifest.Value.Name} written to {anchor.Folder}");
        context.Output.WriteLine($"fingerprint {anchor.Fingerprint}");
        return 0;
    }
}
