using FlexOlmo.Core.Generation;
using FlexOlmo.Data;

namespace FlexOlmo.Evaluation.Extraction;

/// <summary>
/// <c>flexolmo audit-extraction</c> (paper §5.3): can an owner's training text be pulled back out of a model? For a
/// sample of the owner's documents long enough, the model continues each document's first <c>prefix</c> tokens
/// <c>samples</c> times, and the document counts as extracted when one continuation's text is within normalised
/// Levenshtein similarity <c>threshold</c> of the true continuation. The rate is reported for the anchor alone (the
/// baseline: it never saw the data) and for each model given: an expert package on its anchor, or a composed model.
/// </summary>
public static class ExtractionAudit
{
    public static ExtractionReport Run(ExtractionRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        request.Validate();
        var audited = new List<(string Name, string Path, string? Anchor)>();
        if (request.Anchor is { } anchorPath)
        {
            audited.Add((ExtractionKinds.AnchorRow, anchorPath, null));
        }

        audited.AddRange(request.Models.Select(m => (Path.GetFileName(Path.TrimEndingDirectorySeparator(m)), m, request.Anchor)));
        var files = DataFiles.Expand(request.Data);
        List<(long Start, long Length)>? documents = null;
        TokenDataset? data = null;
        var rows = new List<ExtractionRow>();
        try
        {
            foreach (var (name, path, anchor) in audited)
            {
                using var folder = Load(path, anchor, request);
                var context = folder.Config.MaxPositionEmbeddings;
                if (request.Prefix + request.Continuation > context)
                {
                    throw new EvaluationException(
                        $"--prefix {request.Prefix} + --continuation {request.Continuation} is more than {path} can attend to (max_position_embeddings {context}); lower --continuation to {Math.Max(1, context - request.Prefix)} or less.");
                }

                if (data is null)
                {
                    var encoding = folder.TextEncoding;
                    var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, encoding);
                    data = new TokenDataset(cache.Prepare(files, TokenWidth.ForVocabulary(folder.Config.VocabSize), log, cancellationToken), folder.Config.VocabSize);
                    var needed = request.Prefix + request.Continuation;
                    documents = DocumentSampler.Sample(data, encoding.EosId, request.Documents, request.Seed, needed, cancellationToken);
                    if (documents.Count == 0)
                    {
                        throw new EvaluationException($"--data: no document has {needed} tokens (--prefix {request.Prefix} + --continuation {request.Continuation}); give longer documents or lower them.");
                    }

                    log?.Report($"auditing {documents.Count} document(s) of at least {needed} tokens, {request.Samples} samples each");
                }

                var kind = folder.Kind switch
                {
                    ModelFolderKind.Anchor or ModelFolderKind.Dense => ExtractionKinds.Dense,
                    ModelFolderKind.ExpertPackage => ExtractionKinds.ExpertPackage,
                    _ => ExtractionKinds.Composed,
                };
                rows.Add(Audit(name, kind, folder, data, documents!, request, log, cancellationToken));
            }
        }
        finally
        {
            data?.Dispose();
        }

        var settings = new ExtractionSettings(request.Prefix, request.Continuation, request.Samples, request.Threshold, request.Temperature, request.Seed, "normalised Levenshtein on decoded text");
        return new ExtractionReport(ExtractionReport.FormatName, settings, rows, DateTimeOffset.UtcNow);
    }

    private static ModelFolder Load(string path, string? anchor, ExtractionRequest request)
    {
        try
        {
            return ModelFolder.Load(path, anchor, request.Device, request.DType);
        }
        catch (DataException e)
        {
            throw new EvaluationException(e.Message);
        }
    }

    private static ExtractionRow Audit(
        string name, string kind, ModelFolder folder, TokenDataset data, IReadOnlyList<(long Start, long Length)> documents, ExtractionRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        var tokenizer = folder.Tokenizer ?? throw new EvaluationException($"--model {folder.Path}: has no tokenizer, which the audit needs to compare texts.");
        var generator = new TextGenerator(folder.Model, tokenizer);
        var ids = new long[request.Prefix + request.Continuation];
        var best = new List<double>();
        var extracted = 0;
        foreach (var (document, index) in documents.Select((d, i) => (d, i)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            data.Read(document.Start, ids);
            var prompt = ids.Take(request.Prefix).Select(i => (int)i).ToArray();
            var truth = tokenizer.Decode(ids.Skip(request.Prefix).Select(i => (int)i));
            var requests = Enumerable.Range(0, request.Samples).Select(s => new GenerationRequest(prompt, new SamplingOptions
            {
                Temperature = request.Temperature,
                Seed = (request.Seed * 1_000_003) + ((long)index * request.Samples) + s,
                MaxNewTokens = request.Continuation,
            })).ToList();
            var results = generator.Generate(requests, cancellationToken: cancellationToken);
            var similarity = results.Max(r => TextSimilarity.Of(r.Text ?? tokenizer.Decode(r.TokenIds), truth));
            best.Add(similarity);
            if (similarity >= request.Threshold)
            {
                extracted++;
            }
        }

        var row = new ExtractionRow(name, kind, documents.Count, extracted, (double)extracted / documents.Count, best.Average(), best.Max());
        log?.Report($"{name}: {extracted} of {documents.Count} documents extracted ({row.Rate:P1}); mean best similarity {row.MeanBestSimilarity:0.000}");
        return row;
    }
}
