using System.CommandLine;
using System.Text.Json;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo tokenize (--model DIR | --tokenizer dolma2) (--text TEXT | --decode 1,2,3) [--json]</c>.</summary>
internal static class TokenizeCommand
{
    private static readonly Option<string?> Model = new("--model") { Description = "Model folder whose tokenizer to use (tokenizer.json, else dolma2 for a dolma2 vocabulary)." };
    private static readonly Option<string?> Tokenizer = new("--tokenizer") { Description = "A tokenizer by name (dolma2) or a tokenizer.json path." };
    private static readonly Option<string?> Text = new("--text") { Description = "Text to encode into token ids." };
    private static readonly Option<string?> Decode = new("--decode") { Description = "Comma-separated token ids to decode into text." };
    private static readonly Option<bool> Json = CommonOptions.Json();

    public static Command Create()
    {
        var command = new Command("tokenize", "Encode text into token ids, or decode ids into text.") { Model, Tokenizer, Text, Decode, Json };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: false, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var tokenizer = Resolve(context.Get(Model), context.Get(Tokenizer));
        var text = context.Get(Text);
        var decode = context.Get(Decode);
        if ((text is null) == (decode is null))
        {
            throw new FlexOlmoException("Give exactly one of --text or --decode.");
        }

        if (text is not null)
        {
            var ids = tokenizer.Encode(text);
            context.Output.WriteLine(context.Get(Json)
                ? JsonSerializer.Serialize(new { ids, count = ids.Count, tokenizer = tokenizer.Name }, Format.JsonLine)
                : string.Join(",", ids));
            return 0;
        }

        var parsed = ParseIds(decode!, "--decode");
        var decoded = tokenizer.Decode(parsed);
        context.Output.WriteLine(context.Get(Json) ? JsonSerializer.Serialize(new { text = decoded, tokenizer = tokenizer.Name }, Format.JsonLine) : decoded);
        return 0;
    }

    private static ITextTokenizer Resolve(string? model, string? name)
    {
        if ((model is null) == (name is null))
        {
            throw new FlexOlmoException("Give exactly one of --model DIR or --tokenizer NAME.");
        }

        return model is not null ? TokenizerLoader.Load(model, ModelConfig.Load(model)) : TokenizerLoader.FromName(name!);
    }

    /// <summary>Parses "1,2,3" (spaces allowed); names the option and the bad item on error.</summary>
    internal static int[] ParseIds(string list, string option) =>
        list.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(item => int.TryParse(item, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id)
                ? id
                : throw new FlexOlmoException($"{option}: '{item}' is not a token id (expected comma-separated non-negative integers)."))
            .ToArray();
}
