using System.Text;
using System.Text.Json;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Formats;
using FlexOlmo.Packages;

namespace FlexOlmo.Training.RouterTuning;

/// <summary>What <c>flexolmo select-proxy</c> was asked to do.</summary>
public sealed record ProxyRequest
{
    /// <summary>An anchor package or model folder: its tokenizer turns text into ids for the classifier.</summary>
    public required string Anchor { get; init; }

    /// <summary>The owner's documents (stay on the owner's machine; only public text is written).</summary>
    public required IReadOnlyList<string> OwnerData { get; init; }

    public required IReadOnlyList<string> PublicData { get; init; }

    /// <summary>A .jsonl file of the selected public documents.</summary>
    public required string Out { get; init; }

    /// <summary>The share of the public documents to select, the highest-scoring ones.</summary>
    public double Fraction { get; init; } = 0.1;
}

/// <summary>How many documents were scored and selected, and the score of the last one selected.</summary>
public sealed record ProxyResult(string Out, int PublicDocuments, int Selected, double Threshold);

/// <summary>
/// Selects the public documents most like an owner's data with a <see cref="ProxyClassifier"/> (owner against
/// public), and writes them as JSON lines: proxy data for router tuning. The public documents stream through the reader
/// three times (to fit, to score, to copy) rather than being kept, so only token counts, one score per document and
/// one document at a time are held, whatever the size of the public data.
/// </summary>
public static class ProxySelector
{
    /// <summary>The classifier reads at most this many characters of each document (documents longer than this are still copied whole).</summary>
    public const int MaxClassifiedChars = 1 << 20;

    public static ProxyResult Select(ProxyRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        if (!double.IsFinite(request.Fraction) || request.Fraction <= 0 || request.Fraction > 1)
        {
            throw new TrainingException($"--fraction {request.Fraction}: must be above 0 and at most 1.");
        }

        var modelFolder = AnchorPackage.IsPackage(request.Anchor) ? AnchorPackage.Open(request.Anchor).ModelFolder : request.Anchor;
        var config = ModelConfig.Load(modelFolder);
        var tokenizer = TokenizerLoader.Load(modelFolder, config);
        var ownerFiles = Expand(request.OwnerData, "--data");
        var publicFiles = Expand(request.PublicData, "--public-data");
        IReadOnlyList<int> Encode(string text) => tokenizer.Encode(text.Length > MaxClassifiedChars ? text[..MaxClassifiedChars] : text);
        var classifier = ProxyClassifier.Fit(
            Documents(ownerFiles, cancellationToken).Select(Encode), Documents(publicFiles, cancellationToken).Select(Encode), Math.Max(config.VocabSize, tokenizer.VocabularySize));
        var scores = Documents(publicFiles, cancellationToken).Select(d => classifier.Score(Encode(d))).ToArray();
        if (scores.Length == 0)
        {
            throw new TrainingException($"--public-data: {publicFiles.Count} file(s) hold no documents.");
        }

        var count = Math.Max(1, (int)Math.Round(scores.Length * request.Fraction));
        var chosen = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(count).ToHashSet();
        var threshold = chosen.Min(i => scores[i]);
        AtomicFile.Write(request.Out, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            var index = 0;
            foreach (var document in Documents(publicFiles, cancellationToken))
            {
                if (chosen.Contains(index++))
                {
                    writer.Write(JsonSerializer.Serialize(new Dictionary<string, string> { ["text"] = document }));
                    writer.Write('\n');
                }
            }
        });
        log?.Report(FormattableString.Invariant($"proxy: {count} of {scores.Length} public documents selected (score >= {threshold:0.000} nats/token)"));
        return new ProxyResult(Path.GetFullPath(request.Out), scores.Length, count, threshold);
    }

    private static IReadOnlyList<string> Expand(IReadOnlyList<string> paths, string option)
    {
        IReadOnlyList<string> files;
        try
        {
            files = DataFiles.Expand(paths);
        }
        catch (DataException e)
        {
            throw new TrainingException($"{option}: {e.Message}");
        }

        var shard = files.FirstOrDefault(f => !(f.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jsonl.gz", StringComparison.OrdinalIgnoreCase)));
        return shard is null ? files : throw new TrainingException($"{option}: {shard} is not text; proxy selection reads .txt, .jsonl and .jsonl.gz documents.");
    }

    /// <summary>Whole documents of text files (.txt, .jsonl(.gz)) in order.</summary>
    private static IEnumerable<string> Documents(IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        foreach (var file in files)
        {
            foreach (var chunk in DocumentReader.Read(file))
            {
                cancellationToken.ThrowIfCancellationRequested();
                text.Append(chunk.Text);
                if (chunk.EndOfDocument)
                {
                    yield return text.ToString();
                    text.Clear();
                }
            }
        }
    }
}
