using System.CommandLine;
using System.Text.Json;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;
using FlexOlmo.Formats;
using static TorchSharp.torch;

namespace FlexOlmo.Cli.Commands;

// B=batch, T=tokens, V=vocabulary

/// <summary>
/// <c>flexolmo logits --model DIR --input-ids IN.json --out OUT.json</c>: the parity tool. Writes fp32 logits [B, T, V]
/// for the given ids, with optional expert masks, so any other implementation can be compared against this one.
/// </summary>
internal static class LogitsCommand
{
    private const long MaxInputBytes = 256L << 20;

    private static readonly Option<string> Model = new("--model") { Description = "Model folder.", Required = true };
    private static readonly Option<string> InputIds = new("--input-ids") { Description = "JSON file {\"input_ids\": [[...], ...]} (rows of equal length).", Required = true };
    private static readonly Option<string> Out = new("--out") { Description = "Where to write {\"logits\": [[[...]]]} (float32, [B,T,V]).", Required = true };
    private static readonly Option<string?> Exclude = CommonOptions.ExcludeExperts();
    private static readonly Option<string?> Include = CommonOptions.IncludeExperts();
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();

    public static Command Create()
    {
        var command = new Command("logits", "Compute logits for token ids and write them as JSON (for parity checks against other implementations).")
        {
            Model, InputIds, Out, Exclude, Include, Device, DType,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var inputPath = context.Get(InputIds);
        var rows = ReadInputIds(inputPath);
        var (folder, experts) = ModelFolder.LoadSelecting(context.Get(Model), context.Get(Device), context.Get(DType), context.Get(Include), context.Get(Exclude));
        using var loaded = folder;
        var vocab = loaded.Model.Config.VocabSize;
        foreach (var (row, b) in rows.Select((r, b) => (r, b)))
        {
            var bad = Array.FindIndex(row, id => id < 0 || id >= vocab);
            if (bad >= 0)
            {
                throw new FlexOlmoException($"{inputPath}: input_ids[{b}][{bad}] = {row[bad]} is outside the vocabulary (0..{vocab - 1}).");
            }
        }

        using var ids = tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]).to(loaded.Model.Device); // [B, T]
        using var bias = experts is null ? null : ExpertMask.ToRouterBias(rows.Select(_ => experts).ToArray(), loaded.Model.Config.NumExperts, loaded.Model.Device);
        using var noGrad = no_grad();
        using var logits = loaded.Model.Forward(ids, new ForwardOptions { ExpertBias = bias }).to(ScalarType.Float32).cpu().contiguous(); // [B, T, V]
        var values = logits.data<float>();
        var tokens = rows[0].Length;
        AtomicFile.Write(context.Get(Out), stream =>
        {
            using var writer = new Utf8JsonWriter(stream);
            writer.WriteStartObject();
            writer.WriteStartArray("logits");
            long at = 0;
            for (var b = 0; b < rows.Length; b++)
            {
                writer.WriteStartArray();
                for (var t = 0; t < tokens; t++)
                {
                    writer.WriteStartArray();
                    for (var v = 0; v < vocab; v++)
                    {
                        writer.WriteNumberValue(values[at++]);
                    }

                    writer.WriteEndArray();
                }

                writer.WriteEndArray();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        });
        context.Error.WriteLine($"wrote logits [{rows.Length},{tokens},{vocab}] to {context.Get(Out)}");
        return 0;
    }

    internal static long[][] ReadInputIds(string path)
    {
        if (!File.Exists(path))
        {
            throw new FlexOlmoException($"{path}: not found. Give a JSON file like {{\"input_ids\": [[1, 2, 3]]}}.");
        }

        if (new FileInfo(path).Length > MaxInputBytes)
        {
            throw new FlexOlmoException($"{path}: larger than {MaxInputBytes >> 20} MiB.");
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("input_ids", out var ids) || ids.ValueKind != JsonValueKind.Array || ids.GetArrayLength() == 0)
            {
                throw new FlexOlmoException($"{path}: field 'input_ids' must be a non-empty array of rows of token ids.");
            }

            var rows = ids.EnumerateArray().Select((row, b) => row.ValueKind == JsonValueKind.Array
                ? row.EnumerateArray().Select((x, t) => x.TryGetInt64(out var id) ? id : throw new FlexOlmoException($"{path}: input_ids[{b}][{t}] is not an integer.")).ToArray()
                : throw new FlexOlmoException($"{path}: input_ids[{b}] is not an array.")).ToArray();
            if (rows.Any(r => r.Length == 0 || r.Length != rows[0].Length))
            {
                throw new FlexOlmoException($"{path}: every row of 'input_ids' must be non-empty and of the same length.");
            }

            return rows;
        }
        catch (JsonException e)
        {
            throw new FlexOlmoException($"{path}: not valid JSON ({e.Message}).");
        }
    }
}
