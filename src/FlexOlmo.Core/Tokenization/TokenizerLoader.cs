using FlexOlmo.Core.Configuration;

namespace FlexOlmo.Core.Tokenization;

/// <summary>Finds the tokenizer of a model folder: its tokenizer.json, else dolma2 when the vocabulary is dolma2's.</summary>
public static class TokenizerLoader
{
    /// <summary>The tokenizer, or null when the folder has none and the vocabulary is not dolma2's.</summary>
    public static ITextTokenizer? TryLoad(string folder, ModelConfig config)
    {
        var json = Path.Combine(folder, HfJsonTokenizer.FileName);
        if (File.Exists(json))
        {
            return HfJsonTokenizer.Load(json);
        }

        return config.VocabSize >= Dolma2Tokenizer.MinimumVocabulary ? new Dolma2Tokenizer() : null;
    }

    /// <summary>The tokenizer, or an error saying why there is none and what to do instead.</summary>
    public static ITextTokenizer Load(string folder, ModelConfig config) =>
        TryLoad(folder, config) ?? throw new TokenizerException(
            $"{folder}: has no {HfJsonTokenizer.FileName} and its vocabulary ({config.VocabSize}) is not dolma2's (>= {Dolma2Tokenizer.MinimumVocabulary}), " +
            "so text cannot be tokenised. Add a tokenizer.json, or give token ids instead of text.");

    /// <summary>A named tokenizer (only "dolma2" is built in) or a tokenizer.json path / model folder.</summary>
    public static ITextTokenizer FromName(string nameOrPath) => nameOrPath switch
    {
        "dolma2" or "dolma2-tokenizer" or "allenai/dolma2-tokenizer" => new Dolma2Tokenizer(),
        _ when Directory.Exists(nameOrPath) => HfJsonTokenizer.Load(Path.Combine(nameOrPath, HfJsonTokenizer.FileName)),
        _ when File.Exists(nameOrPath) => HfJsonTokenizer.Load(nameOrPath),
        _ => throw new TokenizerException($"Unknown tokenizer '{nameOrPath}': use dolma2, a tokenizer.json file, or a model folder."),
    };
}
