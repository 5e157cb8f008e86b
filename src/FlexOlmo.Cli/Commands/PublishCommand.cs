using System.CommandLine;
using FlexOlmo.Evaluation.Extraction;
using FlexOlmo.Formats;
using FlexOlmo.Packages;
using FlexOlmo.Registry;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo publish DIR --registry URI [--sign-key KEY]</c>: an expert package or an anchor.</summary>
internal static class PublishCommand
{
    private static readonly Argument<string> Folder = new("DIR") { Description = "An expert package (expert.json) or anchor folder (anchor.json)." };
    private static readonly Option<string?> Registry = RegistryOptions.Registry();
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();
    private static readonly Option<string?> SignKey = new("--sign-key") { Description = "Your private signing key (from 'flexolmo keys create'); the manifest carries the signature." };
    private static readonly Option<string?> Audit = new("--audit") { Description = "The JSON report of 'flexolmo audit-extraction' on this expert: its extraction rate (and the anchor's) goes into the published manifest." };

    public static Command Create()
    {
        var command = new Command("publish", "Upload an expert or anchor: files first (skipping blobs already there), the manifest last and only if that version is new.")
        {
            Folder, Registry, Connection, SignKey, Audit,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: false, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        var folder = context.Get(Folder);
        using var key = context.Get(SignKey) is { } path ? SigningKey.Load(path) : null;
        var isAnchor = AnchorPackage.IsPackage(folder);
        var audit = context.Get(Audit) is { } report ? AuditSummary(report, folder, isAnchor) : null;
        var registry = new ExpertRegistry(await RegistryOptions.OpenAsync(context, Registry, Connection, create: true).ConfigureAwait(false));
        var result = await TransferDisplay.RunAsync(context, progress => isAnchor
            ? registry.PublishAnchorAsync(folder, key, progress, context.CancellationToken)
            : registry.PublishExpertAsync(folder, key, audit, progress, context.CancellationToken)).ConfigureAwait(false);
        if (result.AlreadyPublished)
        {
            context.Output.WriteLine($"{result.Reference} is already published in {registry.Store.Location}; nothing was uploaded or changed");
            return 0;
        }

        context.Output.WriteLine(
            $"published {result.Reference} to {registry.Store.Location}: {result.FilesUploaded} file(s) uploaded ({Format.Bytes(result.BytesSent)}), {result.FilesSkipped} already there" +
            (result.BlocksReused > 0 ? $", resumed an interrupted upload ({result.BlocksReused} part(s) already there)" : string.Empty) +
            (result.SignedBy is { } s ? $"; signed by {s}" : "; unsigned") +
            (audit is null ? string.Empty : Format.Invariant($"; extraction audit {audit.Rate:P1} of {audit.Documents} documents")));
        return 0;
    }

    /// <summary>
    /// The audit's row for this package (the row named after its folder, or the only expert-package row) and the
    /// anchor's row, with the report's digest so a reader can ask for the whole report.
    /// </summary>
    private static ExtractionAuditSummary AuditSummary(string reportPath, string folder, bool isAnchor)
    {
        if (isAnchor)
        {
            throw new FlexOlmoException("--audit: applies to an expert package, not to an anchor.");
        }

        var report = ExtractionReport.Load(reportPath);
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        var packages = report.Rows.Where(r => r.Kind == ExtractionKinds.ExpertPackage).ToList();
        var row = report.Rows.FirstOrDefault(r => r.Model == name && r.Kind != ExtractionKinds.Dense) ?? (packages.Count == 1 ? packages[0] : null)
            ?? throw new FlexOlmoException($"--audit {reportPath}: has no row for {name}. Audit this package: flexolmo audit-extraction --model {folder} --anchor ANCHOR --data YOUR_FILES --out {reportPath}");
        var anchor = report.Rows.FirstOrDefault(r => r.Model == ExtractionKinds.AnchorRow);
        var settings = report.Settings;
        return new ExtractionAuditSummary(
            row.Rate, row.Documents, row.Extracted, anchor?.Rate, settings.Prefix, settings.Continuation, settings.Samples, settings.Threshold, FileDigest.Of(File.ReadAllBytes(reportPath)));
    }
}
