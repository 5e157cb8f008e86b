using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using FlexOlmo.Evaluation;
using FlexOlmo.Evaluation.Ensembles;
using FlexOlmo.Evaluation.Study;
using FlexOlmo.Formats;

namespace FlexOlmo.Cli.Demo;

/// <summary>
/// <c>flexolmo study [--work DIR] [--quick]</c>: the paper's comparisons on the demo's setup, each model made by the
/// real commands. It reuses what a finished demo left in DIR (running the demo first when there is none) and what an
/// earlier study run finished under DIR/study, then writes DIR/study/study.{json,md,html}: held-out perplexity per
/// domain for the baselines (anchor, each expert, two soups, BTM, a router tuned on public data only), FlexOlmo (as
/// composed, router-tuned on per-owner proxy data, k from 1 to every expert) and the ablations, and which of the
/// paper's orderings hold at this scale.
/// </summary>
internal static class StudyCommand
{
    private static readonly Option<string> Work = new("--work") { Description = "The demo's work folder (the study reuses a finished demo there, or runs one first); results go to DIR/study.", DefaultValueFactory = _ => "flexolmo-demo" };
    private static readonly Option<bool> Quick = new("--quick") { Description = "On the quick demo's model and data: about 9 minutes on 2 cores instead of about 30, the demo included." };
    private static readonly Option<bool> Tiny = new("--tiny") { Description = "A model of a few thousand parameters, for tests.", Hidden = true };
    private static readonly Option<string?> Corpus = new("--corpus") { Description = "Folder of the extracted Brown texts, passed to the demo when it has to run." };
    private static readonly Option<string> Device = CommonOptions.Device();

    public static Command Create()
    {
        var command = new Command("study", "Reproduce the paper's comparisons on the demo's setup: baselines (soup, BTM, public-only router), FlexOlmo with router tuning and k, and the ablations; reports which orderings hold.")
        {
            Work, Quick, Tiny, Corpus, Device,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(
            parseResult, needsTorch: true, context => new StudyRun(context, DemoPlan.Choose(context.Get(Quick), context.Get(Tiny)), context.Get(Work)).RunAsync(), ct));
        return command;
    }

    private sealed class StudyRun(CommandContext context, DemoPlan plan, string workFolder)
    {
        private static readonly string[] Ablations = [StudyOrderings.NoBias, StudyOrderings.NoInit, StudyOrderings.NoCoordination];
        private static readonly string[] SizeFields = ["hidden_size", "num_hidden_layers", "vocab_size", "max_position_embeddings"];
        private readonly string _work = CommandSteps.Display(workFolder);
        private readonly CommandSteps _steps = new(context, CommandSteps.Display(workFolder), "study");
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly List<StudyRow> _rows = [];
        private int _stage;

        private TextWriter Output => context.Output;

        private string Device => context.Get(StudyCommand.Device);

        private DemoData Data => new(_work);

        private string In(params string[] parts) => Path.Combine([_work, .. parts]);

        private string S(params string[] parts) => Path.Combine([_work, "study", .. parts]);

        public async Task<int> RunAsync()
        {
            Output.WriteLine($"FlexOlmo study ({plan.Name}) on the demo's setup in {_work}; results in {S("study")}.{{json,md,html}}");
            if (await EnsureDemoAsync().ConfigureAwait(false) is { } failed)
            {
                return failed; // the demo has said why
            }

            var demo = EvaluationReport.Load(In("report.json"));
            var domains = demo.Domains;
            Row("baseline", "anchor", "anchor alone", "the dense public anchor (the composed model with the public expert alone)", demo, ExpertMaskSpec.Anchor);
            foreach (var owner in DemoDomain.Owners)
            {
                Row("baseline", $"expert-{owner.Name}", $"{owner.Name} expert alone", $"the {owner.Name} owner's 2-expert model as trained (the composed model masked to public+{owner.Name})", demo, $"only:{owner.Name}");
            }

            Stage("Model soups: one dense model whose FFNs average the experts' (uniform, and weighted by held-out likelihood)");
            await RowOfAsync("baseline", StudyOrderings.SoupUniform, "soup (uniform)", "flexolmo soup: every FFN the uniform average of the 4 experts' FFNs", ExpertMaskSpec.Anchor, async () =>
                await _steps.RunAsync("soup", "--model", In("composed"), "--out", S("soup-uniform")).ConfigureAwait(false), S("soup-uniform")).ConfigureAwait(false);
            var weights = SoupWeights(demo);
            var weightText = string.Join(" ", weights.Select(w => FormattableString.Invariant($"{w.Key}={w.Value:0.####}")));
            await RowOfAsync("baseline", StudyOrderings.SoupWeighted, "soup (likelihood-weighted)", $"flexolmo soup with weights proportional to each expert's held-out likelihood per token ({weightText})", ExpertMaskSpec.Anchor, async () =>
                await _steps.RunAsync(["soup", "--model", In("composed"), "--weights", .. weights.Select(w => FormattableString.Invariant($"{w.Key}={w.Value:R}")), "--out", S("soup-weighted")]).ConfigureAwait(false), S("soup-weighted")).ConfigureAwait(false);

            Stage("BTM: the owners' 2-expert models ensembled token by token (weights softmax(-NLL of the prefix), top-2)");
            var (btm, _) = BtmEnsemble.Evaluate(
                new BtmRequest
                {
                    Model = In("composed"),
                    Members = [.. DemoDomain.Owners.Select(o => $"only:{o.Name}")],
                    Domains = Domains(),
                    TopK = 2,
                    SeqLen = plan.SeqLen,
                    MaxTokens = plan.EvalTokens,
                    Device = Device,
                    TokenCache = In("token-cache"),
                },
                new SyncProgress<string>(l => Output.WriteLine($"  {l}")),
                context.CancellationToken);
            _rows.Add(new StudyRow(StudyOrderings.Btm, "baseline", "BTM (top-2 ensemble)", "the owners' 2-expert models, each token predicted by the two with the highest posterior on the prefix, renormalised", btm));

            Stage("BTX-style: the composed model's router tuned on public data only");
            await RowOfAsync("baseline", "btx", "router tuned on public only (BTX-style)", "flexolmo tune-router on the public training text only", ExpertMaskSpec.Composed, async () =>
                await _steps.RunAsync([.. TuneRouter(S("router-public"), Data.Train(DemoDomain.All.First(d => d.IsPublic)))]).ConfigureAwait(false), S("router-public")).ConfigureAwait(false);

            Stage("FlexOlmo as composed, and with router tuning (RT) on proxy data each owner's classifier picked from the public text");
            _rows.Add(new StudyRow(StudyOrderings.FlexOlmo, "flexolmo", "FlexOlmo (as composed)", $"the demo's composed model, top-{plan.ExpertsPerToken}, routers from the domain embeddings as trained", Of(demo, ExpertMaskSpec.Composed)));
            var publicTrain = Data.Train(DemoDomain.All.First(d => d.IsPublic));
            await RowOfAsync("flexolmo", StudyOrderings.RouterTuned, "FlexOlmo + RT (proxy data)", "flexolmo select-proxy per owner (naive Bayes on tokens, owner vs public, top quarter of the public documents), then tune-router on the proxies plus the public text", ExpertMaskSpec.Composed, async () =>
            {
                foreach (var owner in DemoDomain.Owners)
                {
                    await _steps.RunAsync("select-proxy", "--anchor", In("anchor"), "--data", Data.Train(owner), "--public-data", publicTrain, "--out", S("proxy", $"{owner.Name}.jsonl"), "--fraction", "0.25").ConfigureAwait(false);
                }

                await _steps.RunAsync([.. TuneRouter(S("router-rt"), [.. DemoDomain.Owners.Select(o => S("proxy", $"{o.Name}.jsonl")), publicTrain])]).ConfigureAwait(false);
            }, S("router-rt")).ConfigureAwait(false);

            var experts = DemoDomain.Owners.Count() + 1;
            Stage($"FlexOlmo with k = 1 ... {experts} experts per token (the demo's recipe, composed again)");
            for (var k = 1; k <= experts; k++)
            {
                var recipe = S("recipes", $"k{k}.yaml");
                var output = S($"k{k}");
                await RowOfAsync("k", StudyOrderings.K(k), $"FlexOlmo, k={k}", $"the demo's recipe composed with experts_per_token {k}", ExpertMaskSpec.Composed, async () =>
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(recipe)!);
                    File.WriteAllText(recipe, DemoPlan.RecipeText($"brown-k{k}", k, "anchor:brown-public", [.. DemoDomain.Owners.Select(o => $"{o.Name}@1.0.0")], "../../registry", "../../keys", $"../k{k}"));
                    await _steps.RunAsync("compose", "--recipe", recipe).ConfigureAwait(false);
                }, output).ConfigureAwait(false);
            }

            foreach (var ablation in Ablations)
            {
                Stage($"Ablation {ablation}: every owner's expert trained again with train-expert --ablation {ablation}, then composed from the folders");
                var folder = S("ablations", ablation);
                foreach (var owner in DemoDomain.Owners)
                {
                    var expert = Path.Combine(folder, "experts", owner.Name);
                    if (File.Exists(Path.Combine(expert, "expert.json")))
                    {
                        Output.WriteLine($"  reusing {expert}");
                        continue;
                    }

                    if (Directory.Exists(expert))
                    {
                        Directory.Delete(expert, recursive: true); // an unfinished run of an earlier study; nothing of the owner's is lost
                    }

                    await _steps.RunAsync([.. plan.TrainExpertArguments(In("anchor"), Data.Train(owner), owner, expert, In("token-cache"), Device, ablation)]).ConfigureAwait(false);
                }

                await RowOfAsync("ablation", ablation, $"FlexOlmo, {ablation}", AblationHow(ablation) + (ablation == StudyOrderings.NoBias ? TrainedBiases() : string.Empty), ExpertMaskSpec.Composed, async () =>
                {
                    var recipe = Path.Combine(folder, "recipe.yaml");
                    File.WriteAllText(recipe, DemoPlan.RecipeText($"brown-{ablation}", plan.ExpertsPerToken, "../../../anchor", [.. DemoDomain.Owners.Select(o => $"experts/{o.Name}")], null, null, "composed"));
                    await _steps.RunAsync("compose", "--recipe", recipe).ConfigureAwait(false);
                }, Path.Combine(folder, "composed")).ConfigureAwait(false);
            }

            Stage("The table, and the paper's orderings at this scale");
            var report = new StudyReport(
                plan.Name, domains, demo.Tokens, demo.SeqLen, _rows, StudyOrderings.Check(_rows),
                weights, Math.Round(_clock.Elapsed.TotalSeconds, 1), DateTimeOffset.UtcNow, Packages.ToolInfo.Current);
            var paths = report.Save(S("study"));
            Output.WriteLine(FormattableString.Invariant($"  {"model",-40} {string.Join(" ", domains.Select(d => $"{d,9}"))} {"average",9}"));
            foreach (var row in report.Rows)
            {
                Output.WriteLine(FormattableString.Invariant($"  {row.Label,-40} {string.Join(" ", domains.Select(d => $"{row.Perplexity[d],9:0.00}"))} {row.Average,9:0.00}"));
            }

            Output.WriteLine();
            foreach (var ordering in report.Orderings)
            {
                Output.WriteLine($"  {(ordering.Passed ? "holds        " : "DOES NOT hold")}  {ordering.Claim}: {ordering.Detail}");
            }

            Output.WriteLine();
            Output.WriteLine(FormattableString.Invariant($"{report.Orderings.Count(o => o.Passed)} of {report.Orderings.Count} orderings hold at this scale. Report: {string.Join(", ", paths)} (study took {_clock.Elapsed:mm\\:ss})."));
            return 0;
        }

        /// <summary>
        /// Runs the demo unless a finished one of the same plan is there (a demo of another size is refused); returns the
        /// demo's exit code when it did not finish.
        /// </summary>
        private async Task<int?> EnsureDemoAsync()
        {
            if (File.Exists(_work))
            {
                throw new FlexOlmoException($"--work {_work}: is a file; give the demo's work folder, or a new folder for the demo to make.");
            }

            if (File.Exists(In("report.json")) && File.Exists(In("composed", "config.json")))
            {
                JsonNode? made;
                try
                {
                    made = JsonNode.Parse(File.ReadAllText(In("anchor-config.json")));
                }
                catch (Exception e) when (e is System.Text.Json.JsonException or IOException)
                {
                    throw new FlexOlmoException($"--work {_work}: the demo's anchor-config.json cannot be read ({e.Message}); run the demo again in a new folder.");
                }

                var wanted = plan.AnchorConfig();
                if (made is not JsonObject || SizeFields.Any(f => made[f]?.ToJsonString() != wanted[f]?.ToJsonString()))
                {
                    throw new FlexOlmoException(
                        $"--work {_work}: holds a finished demo of another size than the {plan.Name} study needs; run the study with the flag the demo had (--quick or not), or give another --work.");
                }

                Output.WriteLine($"reusing the finished demo in {_work}");
                return null;
            }

            if (Directory.Exists(_work) && Directory.EnumerateFileSystemEntries(_work).Any() && !File.Exists(In(DemoCommand.Marker)))
            {
                throw new FlexOlmoException($"--work {_work}: holds no finished demo, and no demo made it, so the study would not run one there; give the demo's work folder or a new one.");
            }

            Output.WriteLine($"no finished demo in {_work}; running it first");
            string[] args = ["demo", "--work", _work, .. plan.Flags, "--device", Device];
            if (context.Get(Corpus) is { } corpus)
            {
                args = [.. args, "--corpus", corpus];
            }

            var code = await _steps.TryRunAsync(args).ConfigureAwait(false);
            return File.Exists(In("report.json")) ? null : Math.Max(code, 1);
        }

        /// <summary>Makes a model with <paramref name="make"/> unless <paramref name="model"/> exists, evaluates it (or reuses its report) and adds the row.</summary>
        private async Task RowOfAsync(string group, string key, string label, string how, string mask, Func<Task> make, string model)
        {
            if (Directory.Exists(model))
            {
                Output.WriteLine($"  reusing {model}");
            }
            else
            {
                await make().ConfigureAwait(false);
            }

            var prefix = model + ".eval";
            if (!File.Exists(prefix + ".json"))
            {
                List<string> args = ["eval", "--model", model, "--data", .. Domains().Select(d => $"{d.Name}={d.Paths[0]}"), "--masks", mask,
                    "--seq-len", CommandSteps.I(plan.SeqLen), "--max-tokens", CommandSteps.I(plan.EvalTokens), "--out", prefix, "--token-cache", In("token-cache"), "--device", Device];
                await _steps.RunAsync([.. args]).ConfigureAwait(false);
            }

            Row(group, key, label, how, EvaluationReport.Load(prefix + ".json"), mask);
        }

        private void Row(string group, string key, string label, string how, EvaluationReport report, string mask) =>
            _rows.Add(new StudyRow(key, group, label, how, Of(report, mask)));

        private static Dictionary<string, double> Of(EvaluationReport report, string mask) => report.Domains.ToDictionary(d => d, d => report[mask, d]);

        private IReadOnlyList<EvaluationDomain> Domains() => [.. DemoDomain.All.Select(d => new EvaluationDomain(d.Name, [Data.HeldOut(d)]))];

        private IEnumerable<string> TuneRouter(string output, params string[] data)
        {
            var steps = Math.Max(1, plan.RouterTuningTokens / plan.BatchTokens);
            return ["tune-router", "--model", In("composed"), "--data", .. data, "--out", output, "--seq-len", CommandSteps.I(plan.SeqLen), "--batch-tokens", CommandSteps.I(plan.BatchTokens),
                "--tokens", CommandSteps.I(plan.RouterTuningTokens), "--warmup", CommandSteps.I(Math.Max(1, steps / 10)), "--router-z-loss", CommandSteps.D(plan.RouterZLoss),
                "--val-fraction", "0", "--checkpoint-every", "0", "--token-cache", In("token-cache"), "--device", Device];
        }

        /// <summary>
        /// Soup weights proportional to each expert's held-out likelihood per token: w_e ∝ exp(-mean over domains of
        /// ln perplexity), the public expert measured alone (the anchor) and each owner's as its 2-expert model.
        /// </summary>
        private static Dictionary<string, double> SoupWeights(EvaluationReport demo)
        {
            double MeanNll(string mask) => demo.Domains.Average(d => Math.Log(demo[mask, d]));
            var nll = new Dictionary<string, double> { ["public"] = MeanNll(ExpertMaskSpec.Anchor) };
            foreach (var owner in DemoDomain.Owners)
            {
                nll[owner.Name] = MeanNll($"only:{owner.Name}");
            }

            var best = nll.Values.Min();
            var raw = nll.ToDictionary(p => p.Key, p => Math.Exp(best - p.Value));
            var sum = raw.Values.Sum();
            return raw.ToDictionary(p => p.Key, p => p.Value / sum);
        }

        /// <summary>
        /// What the method's own training did with b_i (from the composed model's sidecar). A bias that never went below
        /// zero never acted, as min(b_i, 0) = 0, and then the no-bias ablation trains exactly the same expert.
        /// </summary>
        private string TrainedBiases()
        {
            var biases = Packages.ComposedSidecar.TryLoad(In("composed"))?.Experts.SelectMany(e => e.RouterBias ?? []).ToList();
            if (biases is not { Count: > 0 })
            {
                return string.Empty;
            }

            var acted = biases.Count(b => b < 0);
            return FormattableString.Invariant($" (the method's trained b_i range from {biases.Min():0.####} to {biases.Max():0.####}; ") +
                (acted == 0 ? "none went below 0, so min(b_i, 0) never acted and this ablation trains the same experts)" : FormattableString.Invariant($"{acted} of {biases.Count} are below 0 and acted)"));
        }

        private static string AblationHow(string ablation) => ablation switch
        {
            StudyOrderings.NoBias => "experts trained without the router bias b_i (it stays 0), composed as the method",
            StudyOrderings.NoInit => "experts trained from a random router row instead of the domain embedding, and without the bias",
            _ => "each FFN fine-tuned alone as a dense model (the public expert switched off, r_i kept at the domain embedding), then merged with domain-embedding routing",
        };

        private void Stage(string title)
        {
            Output.WriteLine();
            Output.WriteLine(FormattableString.Invariant($"[study {++_stage}] {title}  ({_clock.Elapsed:mm\\:ss})"));
        }
    }
}
