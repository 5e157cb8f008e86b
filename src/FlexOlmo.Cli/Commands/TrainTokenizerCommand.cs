using System.CommandLine;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Training.Tokenizers;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo train-tokenizer --data PATH... --vocab-size N --out tokenizer.json</c>: a byte-level BPE tokenizer.</summary>
internal static class TrainTokenizerCommand
{
    private static readonly Option<string[]> Data = new("--data") { Description = "Text to learn merges from (.txt, .jsonl(.gz)).", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<int> VocabSize = new("--vocab-size") { Description = "Regular tokens (256 bytes + merges); special tokens are added after.", DefaultValueFactory = _ => 4096 };
    private static readonly Option<string[]> Special = new("--special") { Description = "Special tokens, in order (default <|endoftext|> <|pad|>).", DefaultValueFactory = _ => ["<|endoftext|>", "<|pad|>"], AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string> Out = new("--out") { Description = "Where to write tokenizer.json.", Required = true };

    public static Command Create()
    {
        var command = new Command("train-tokenizer", "Learn a byte-level BPE tokenizer (Hugging Face tokenizer.json) from text.") { Data, VocabSize, Special, Out };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: false, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var specials = context.Get(Special);
        BpeTrainer.Train(DataFiles.Expand(context.Get(Data)), context.Get(VocabSize), specials, context.Get(Out), cancellationToken: context.CancellationToken);
        var tokenizer = HfJsonTokenizer.Load(context.Get(Out));
        context.Output.WriteLine($"tokenizer with {tokenizer.VocabularySize} ids written to {context.Get(Out)}; special tokens: {string.Join(" ", specials.Select((s, i) => $"{s}={context.Get(VocabSize) + i}"))}");
        return 0;
    }
}
