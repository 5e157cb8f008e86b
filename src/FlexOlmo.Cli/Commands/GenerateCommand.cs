using System.CommandLine;
using System.Text.Json;
using FlexOlmo.Core.Generation;
using FlexOlmo.Data;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli.Commands;

/// <summary>
/// <c>flexolmo generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) ...</c>: streams the continuation as it is
/// produced; <c>--json</c> prints <c>{"token_ids": [...], "text": "..."}</c> (prompt excluded). Several --prompt
/// values run as one batch.
/// </summary>
internal static class GenerateCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "Model folder.", Required = true };
    private static readonly Option<string[]> Prompt = new("--prompt") { Description = "Prompt text (repeat for a batch).", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string?> PromptIds = new("--prompt-ids") { Description = "Prompt as comma-separated token ids." };
    private static readonly Option<int> MaxNewTokens = new("--max-new-tokens") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 64 };
    private static readonly Option<double> Temperature = new("--temperature") { Description = "0 = greedy (deterministic).", DefaultValueFactory = _ => 0.0 };
    private static readonly Option<double> TopP = new("--top-p") { Description = "Nucleus sampling threshold.", DefaultValueFactory = _ => 1.0 };
    private static readonly Option<int> TopK = new("--top-k") { Description = "Sample among the k most likely tokens (0 = all).", DefaultValueFactory = _ => 0 };
    private static readonly Option<long> Seed = new("--seed") { Description = "Seed for sampling.", DefaultValueFactory = _ => 0L };
    private static readonly Option<string[]> Stop = new("--stop") { Description = "Stop when this text appears (repeatable); it is not printed." };
    private static readonly Option<bool> IgnoreEos = new("--ignore-eos") { Description = "Keep generating past the end-of-sequence token." };
    private static readonly Option<string?> Exclude = CommonOptions.ExcludeExperts();
    private static readonly Option<string?> Include = CommonOptions.IncludeExperts();
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<bool> Json = CommonOptions.Json();

    public static Command Create()
    {
        var command = new Command("generate", "Continue a prompt, streaming the text; choose which experts may take part.")
        {
            Model, Prompt, PromptIds, MaxNewTokens, Temperature, TopP, TopK, Seed, Stop, IgnoreEos, Exclude, Include, Device, DType, Json,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var prompts = context.Get(Prompt) ?? [];
        var ids = context.Get(PromptIds);
        if ((prompts.Length == 0) == (ids is null))
        {
            throw new FlexOlmoException("Give --prompt TEXT (one or more) or --prompt-ids 1,2,3.");
        }

        var (folder, experts) = ModelFolder.LoadSelecting(context.Get(Model), context.Get(Device), context.Get(DType), context.Get(Include), context.Get(Exclude));
        using var loaded = folder;
        var tokenizer = prompts.Length > 0 || context.Get(Stop)?.Length > 0 ? loaded.RequireTokenizer() : loaded.Tokenizer;
        var encoded = prompts.Length > 0
            ? prompts.Select(p => tokenizer!.Encode(p).ToArray()).ToArray()
            : [TokenizeCommand.ParseIds(ids!, "--prompt-ids")];
        var sampling = new SamplingOptions
        {
            MaxNewTokens = context.Get(MaxNewTokens),
            Temperature = context.Get(Temperature),
            TopP = context.Get(TopP),
            TopK = context.Get(TopK),
            Seed = context.Get(Seed),
            StopStrings = context.Get(Stop) ?? [],
            EosTokenIds = context.Get(IgnoreEos) ? [] : loaded.EosTokenIds.ToArray(),
        };
        var requests = encoded.Select(p => new GenerationRequest(p, sampling, experts)).ToArray();
        var json = context.Get(Json);
        var stream = !json && requests.Length == 1;
        var generator = new TextGenerator(loaded.Model, tokenizer);
        var results = generator.Generate(
            requests,
            stream ? e => Print(context.Output, e, tokenizer is null) : null,
            context.CancellationToken);
        if (json)
        {
            var items = results.Select(r => new { token_ids = r.TokenIds, text = r.Text, finish_reason = r.FinishReason }).ToArray();
            context.Output.WriteLine(items.Length == 1 ? JsonSerializer.Serialize(items[0], Format.JsonLine) : JsonSerializer.Serialize(items, Format.JsonLine));
        }
        else if (stream)
        {
            context.Output.WriteLine();
        }
        else
        {
            foreach (var (result, i) in results.Select((r, i) => (r, i)))
            {
                context.Output.WriteLine($"[{i}] {result.Text ?? string.Join(",", result.TokenIds)}");
            }
        }

        return 0;
    }

    private static void Print(TextWriter output, GenerationEvent e, bool idsOnly)
    {
        output.Write(idsOnly ? $"{e.TokenId} " : e.Text);
        output.Flush();
    }
}
