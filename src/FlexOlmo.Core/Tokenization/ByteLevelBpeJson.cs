using System.Text.Json;
using FlexOlmo.Formats;

namespace FlexOlmo.Core.Tokenization;

/// <summary>
/// Writes a byte-level BPE tokenizer as a Hugging Face tokenizer.json: the cl100k-style split pre-tokenizer, the
/// GPT-2 byte alphabet (<see cref="ByteLevelAlphabet"/>), merges in priority order, and special tokens marked
/// special. <see cref="HfJsonTokenizer"/> and Hugging Face tokenizers both load it.
/// </summary>
public static class ByteLevelBpeJson
{
    /// <summary>The cl100k / dolma2 pre-tokenizer regex.</summary>
    public const string Cl100kPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <param name="vocab">Byte-level spellings and their ids, written in the order given.</param>
    /// <param name="merges">Pairs of spellings, highest priority first.</param>
    /// <param name="specialTokens">Special tokens and their ids.</param>
    public static void Write(string path, IEnumerable<(string Token, int Id)> vocab, IEnumerable<(string Left, string Right)> merges, IEnumerable<(int Id, string Content)> specialTokens) =>
        AtomicFile.Write(path, stream =>
        {
            using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
            writer.WriteStartObject();
            writer.WriteString("version", "1.0");
            writer.WriteStartArray("added_tokens");
            foreach (var (id, content) in specialTokens)
            {
                writer.WriteStartObject();
                writer.WriteNumber("id", id);
                writer.WriteString("content", content);
                writer.WriteBoolean("single_word", false);
                writer.WriteBoolean("lstrip", false);
                writer.WriteBoolean("rstrip", false);
                writer.WriteBoolean("normalized", false);
                writer.WriteBoolean("special", true);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteNull("normalizer");
            writer.WriteStartObject("pre_tokenizer");
            writer.WriteString("type", "Sequence");
            writer.WriteStartArray("pretokenizers");
            writer.WriteStartObject();
            writer.WriteString("type", "Split");
            writer.WriteStartObject("pattern");
            writer.WriteString("Regex", Cl100kPattern);
            writer.WriteEndObject();
            writer.WriteString("behavior", "Isolated");
            writer.WriteBoolean("invert", false);
            writer.WriteEndObject();
            writer.WriteStartObject();
            writer.WriteString("type", "ByteLevel");
            writer.WriteBoolean("add_prefix_space", false);
            writer.WriteBoolean("trim_offsets", true);
            writer.WriteBoolean("use_regex", false);
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteNull("post_processor");
            writer.WriteStartObject("decoder");
            writer.WriteString("type", "ByteLevel");
            writer.WriteBoolean("add_prefix_space", true);
            writer.WriteBoolean("trim_offsets", true);
            writer.WriteBoolean("use_regex", true);
            writer.WriteEndObject();
            writer.WriteStartObject("model");
            writer.WriteString("type", "BPE");
            writer.WriteNull("dropout");
            writer.WriteNull("unk_token");
            writer.WriteBoolean("fuse_unk", false);
            writer.WriteBoolean("byte_fallback", false);
            writer.WriteBoolean("ignore_merges", false);
            writer.WriteStartObject("vocab");
            foreach (var (token, id) in vocab)
            {
                writer.WriteNumber(token, id);
            }

            writer.WriteEndObject();
            writer.WriteStartArray("merges");
            foreach (var (left, right) in merges)
            {
                writer.WriteStringValue($"{left} {right}");
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteEndObject();
        });
}
