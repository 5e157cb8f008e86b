using System.Text.Json;
using System.Text.Json.Nodes;
using FlexOlmo.Formats;

namespace FlexOlmo.Core.Configuration;

/// <summary>
/// The fields of a Hugging Face <c>olmo2</c> or <c>flex_olmo</c> config.json that change the computation,
/// named as config.json names them. Reads both transformers v4 (<c>rope_theta</c>, <c>torch_dtype</c>) and v5
/// (<c>rope_parameters</c>, <c>dtype</c>, <c>num_local_experts</c>) spellings; <see cref="Raw"/> keeps every other
/// field so a rewritten config loses nothing.
/// </summary>
public sealed record ModelConfig
{
    public const string Olmo2 = "olmo2";
    public const string FlexOlmo = "flex_olmo";
    public const string FileName = "config.json";
    private const long MaxConfigBytes = 4 << 20;

    public required string ModelType { get; init; }

    public required int VocabSize { get; init; }

    public required int HiddenSize { get; init; }

    /// <summary>FFN width (per expert for flex_olmo).</summary>
    public required int IntermediateSize { get; init; }

    public required int NumHiddenLayers { get; init; }

    public required int NumAttentionHeads { get; init; }

    public required int NumKeyValueHeads { get; init; }

    public required int HeadDim { get; init; }

    public required double RmsNormEps { get; init; }

    public required double RopeTheta { get; init; }

    public int MaxPositionEmbeddings { get; init; } = 4096;

    public bool TieWordEmbeddings { get; init; }

    /// <summary>Experts (flex_olmo only; 0 for a dense model).</summary>
    public int NumExperts { get; init; }

    public int NumExpertsPerTok { get; init; }

    public bool NormTopkProb { get; init; }

    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int? PadTokenId { get; init; }

    public int? BosTokenId { get; init; }

    /// <summary>The storage dtype named by the config (<c>dtype</c> or <c>torch_dtype</c>), if any.</summary>
    public string? StorageDType { get; init; }

    /// <summary>The whole config.json as read, for fields this record does not model.</summary>
    public JsonObject Raw { get; init; } = [];

    public bool IsMoe => ModelType == FlexOlmo;

    public int QueryWidth => NumAttentionHeads * HeadDim;

    public int KeyValueWidth => NumKeyValueHeads * HeadDim;

    /// <summary>Reads and validates <c>config.json</c> from a model folder (or the file itself).</summary>
    public static ModelConfig Load(string folderOrFile)
    {
        var path = Directory.Exists(folderOrFile) ? Path.Combine(folderOrFile, FileName) : folderOrFile;
        if (!File.Exists(path))
        {
            throw new ConfigException($"{path}: not found. A model folder needs the config.json that Hugging Face writes.");
        }

        if (new FileInfo(path).Length > MaxConfigBytes)
        {
            throw new ConfigException($"{path}: larger than {MaxConfigBytes} bytes; not a model config.");
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllBytes(path), documentOptions: new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: not valid JSON ({e.Message}).");
        }

        if (node is not JsonObject json)
        {
            throw new ConfigException($"{path}: must hold a JSON object.");
        }

        return FromJson(json, path);
    }

    /// <summary>Builds and validates a config from parsed JSON; <paramref name="source"/> names it in messages.</summary>
    public static ModelConfig FromJson(JsonObject json, string source)
    {
        var reader = new FieldReader(json, source);
        var modelType = reader.String("model_type") ?? throw new ConfigException($"{source}: field 'model_type' is missing; expected \"{Olmo2}\" or \"{FlexOlmo}\".");
        if (modelType is not (Olmo2 or FlexOlmo))
        {
            throw new ConfigException($"{source}: field 'model_type' is \"{modelType}\"; FlexOlmo.NET reads \"{Olmo2}\" and \"{FlexOlmo}\".");
        }

        var hidden = reader.RequiredInt("hidden_size");
        var heads = reader.RequiredInt("num_attention_heads");
        var isMoe = modelType == FlexOlmo;
        var experts = isMoe ? reader.Int("num_experts") ?? reader.Int("num_local_experts") ?? throw new ConfigException($"{source}: field 'num_experts' is missing (a flex_olmo config needs it).") : 0;
        var config = new ModelConfig
        {
            ModelType = modelType,
            VocabSize = reader.RequiredInt("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = reader.RequiredInt("intermediate_size"),
            NumHiddenLayers = reader.RequiredInt("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = reader.Int("num_key_value_heads") ?? heads,
            HeadDim = reader.Int("head_dim") ?? (heads > 0 ? hidden / heads : 0),
            RmsNormEps = reader.Double("rms_norm_eps") ?? (isMoe ? 1e-6 : 1e-5),
            RopeTheta = ReadRopeTheta(reader, json, source, isMoe),
            MaxPositionEmbeddings = reader.Int("max_position_embeddings") ?? (isMoe ? 4096 : 2048), // Hugging Face's defaults
            TieWordEmbeddings = reader.Bool("tie_word_embeddings") ?? false,
            NumExperts = experts,
            NumExpertsPerTok = isMoe ? reader.Int("num_experts_per_tok") ?? 5 : 0,
            NormTopkProb = reader.Bool("norm_topk_prob") ?? false,
            EosTokenIds = reader.IntOrList("eos_token_id"),
            PadTokenId = reader.Int("pad_token_id"),
            BosTokenId = reader.Int("bos_token_id"),
            StorageDType = reader.String("dtype") ?? reader.String("torch_dtype"),
            Raw = json,
        };
        if (reader.Bool("attention_bias") == true)
        {
            throw new ConfigException($"{source}: field 'attention_bias' is true; OLMo-2 and FlexOlmo have no attention biases.");
        }

        var act = reader.String("hidden_act");
        if (act is not null and not "silu")
        {
            throw new ConfigException($"{source}: field 'hidden_act' is \"{act}\"; only \"silu\" (SwiGLU) is supported.");
        }

        config.Validate(source);
        return config;
    }

    /// <summary>Checks every field; the message names the first bad one.</summary>
    public void Validate(string source)
    {
        static void Positive(string source, string field, long value)
        {
            if (value <= 0)
            {
                throw new ConfigException($"{source}: field '{field}' must be positive (got {value}).");
            }
        }

        static void Within(string source, string field, long value, long max)
        {
            Positive(source, field, value);
            if (value > max)
            {
                throw new ConfigException($"{source}: field '{field}' is {value}; at most {max} is supported.");
            }
        }

        // Bounds far above any released model, so a hostile config cannot make the loader allocate terabytes.
        Within(source, "vocab_size", VocabSize, 1 << 22);
        Within(source, "hidden_size", HiddenSize, 1 << 16);
        Within(source, "intermediate_size", IntermediateSize, 1 << 19);
        Within(source, "num_hidden_layers", NumHiddenLayers, 1024);
        Within(source, "num_attention_heads", NumAttentionHeads, 1024);
        Within(source, "num_key_value_heads", NumKeyValueHeads, 1024);
        Within(source, "head_dim", HeadDim, 1024);
        Within(source, "max_position_embeddings", MaxPositionEmbeddings, 1 << 21);
        if (HeadDim % 2 != 0)
        {
            throw new ConfigException($"{source}: field 'head_dim' must be even for rotary embeddings (got {HeadDim}).");
        }

        if (NumAttentionHeads % NumKeyValueHeads != 0)
        {
            throw new ConfigException($"{source}: field 'num_key_value_heads' ({NumKeyValueHeads}) must divide 'num_attention_heads' ({NumAttentionHeads}).");
        }

        if (RmsNormEps is <= 0 or > 1 || double.IsNaN(RmsNormEps))
        {
            throw new ConfigException($"{source}: field 'rms_norm_eps' must be in (0, 1] (got {RmsNormEps}).");
        }

        if (RopeTheta <= 0 || !double.IsFinite(RopeTheta))
        {
            throw new ConfigException($"{source}: field 'rope_theta' must be positive (got {RopeTheta}).");
        }

        if (IsMoe)
        {
            Within(source, "num_experts", NumExperts, 1024);
            Positive(source, "num_experts_per_tok", NumExpertsPerTok);
            if (NumExpertsPerTok > NumExperts)
            {
                throw new ConfigException($"{source}: field 'num_experts_per_tok' ({NumExpertsPerTok}) exceeds 'num_experts' ({NumExperts}).");
            }
        }

        foreach (var (field, id) in EosTokenIds.Select(e => ("eos_token_id", (int?)e)).Append(("pad_token_id", PadTokenId)).Append(("bos_token_id", BosTokenId)))
        {
            if (id is { } value && (value < 0 || value >= VocabSize))
            {
                throw new ConfigException($"{source}: field '{field}' ({value}) is outside the vocabulary (0..{VocabSize - 1}).");
            }
        }
    }

    /// <summary>
    /// A copy of this config as JSON, with the computed fields written in the transformers v5 spelling and every
    /// other field of <see cref="Raw"/> kept.
    /// </summary>
    public JsonObject ToJson()
    {
        var json = (JsonObject)Raw.DeepClone();
        json["model_type"] = ModelType;
        json["architectures"] = new JsonArray(ModelType == FlexOlmo ? "FlexOlmoForCausalLM" : "Olmo2ForCausalLM");
        json["vocab_size"] = VocabSize;
        json["hidden_size"] = HiddenSize;
        json["intermediate_size"] = IntermediateSize;
        json["num_hidden_layers"] = NumHiddenLayers;
        json["num_attention_heads"] = NumAttentionHeads;
        json["num_key_value_heads"] = NumKeyValueHeads;
        if (HeadDim != HiddenSize / NumAttentionHeads || json.ContainsKey("head_dim"))
        {
            json["head_dim"] = HeadDim;
        }

        json["rms_norm_eps"] = RmsNormEps;
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["tie_word_embeddings"] = TieWordEmbeddings;
        json["attention_bias"] = false;
        json["hidden_act"] = "silu";
        json.Remove("rope_theta");
        json["rope_parameters"] = new JsonObject { ["rope_theta"] = RopeTheta, ["rope_type"] = "default" };
        json.Remove("torch_dtype");
        if (StorageDType is not null)
        {
            json["dtype"] = StorageDType;
        }

        json.Remove("num_local_experts");
        if (IsMoe)
        {
            json["num_experts"] = NumExperts;
            json["num_experts_per_tok"] = NumExpertsPerTok;
            json["norm_topk_prob"] = NormTopkProb;
        }
        else
        {
            json.Remove("num_experts");
            json.Remove("num_experts_per_tok");
            json.Remove("norm_topk_prob");
        }

        json["eos_token_id"] = EosTokenIds.Count switch
        {
            0 => null,
            1 => EosTokenIds[0],
            _ => new JsonArray(EosTokenIds.Select(e => (JsonNode)e).ToArray()),
        };
        json["pad_token_id"] = PadTokenId;
        json["bos_token_id"] = BosTokenId;
        return json;
    }

    /// <summary>This config with another storage dtype.</summary>
    public ModelConfig WithStorage(string dtype) => this with { StorageDType = dtype };

    /// <summary>Writes config.json into a folder (atomically).</summary>
    public void Save(string folder) =>
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    private static double ReadRopeTheta(FieldReader reader, JsonObject json, string source, bool isMoe)
    {
        // Hugging Face's defaults when the config does not say: FlexOlmo 500000, OLMo-2 10000.
        var fallback = isMoe ? 500000.0 : 10000.0;
        if (json["rope_parameters"] is { } node)
        {
            var parameters = node as JsonObject ?? throw new ConfigException($"{source}: field 'rope_parameters' must be an object.");
            var inner = new FieldReader(parameters, $"{source}: rope_parameters");
            var type = inner.String("rope_type") ?? "default";
            if (type != "default")
            {
                throw new ConfigException($"{source}: field 'rope_parameters.rope_type' is \"{type}\"; only \"default\" RoPE is supported.");
            }

            if (inner.Double("rope_theta") is { } value)
            {
                return value;
            }
        }

        if (json["rope_scaling"] is JsonObject scaling && new FieldReader(scaling, $"{source}: rope_scaling").String("rope_type") is { } scalingType && scalingType != "default")
        {
            throw new ConfigException($"{source}: field 'rope_scaling' asks for \"{scalingType}\"; only default RoPE is supported.");
        }

        return reader.Double("rope_theta") ?? fallback;
    }

    /// <summary>A JSON number as a double, whatever CLR type the node wraps (parsed or assigned).</summary>
    private static double? Number(JsonNode node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number
            && double.TryParse(value.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
            ? d
            : null;

    private sealed class FieldReader(JsonObject json, string source)
    {
        public string? String(string field) => json[field] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            _ => throw new ConfigException($"{source}: field '{field}' must be a string."),
        };

        public int? Int(string field) => json[field] switch
        {
            null => null,
            JsonNode n when Number(n) is { } d && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue => (int)d,
            _ => throw new ConfigException($"{source}: field '{field}' must be an integer."),
        };

        public int RequiredInt(string field) => Int(field) ?? throw new ConfigException($"{source}: field '{field}' is missing.");

        public double? Double(string field) => json[field] switch
        {
            null => null,
            JsonNode n when Number(n) is { } d => d,
            _ => throw new ConfigException($"{source}: field '{field}' must be a number."),
        };

        public bool? Bool(string field) => json[field] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            _ => throw new ConfigException($"{source}: field '{field}' must be true or false."),
        };

        public IReadOnlyList<int> IntOrList(string field) => json[field] switch
        {
            null => [],
            JsonArray array => array.Select((x, i) => x is not null && Number(x) is { } d && d == Math.Floor(d) && d is >= 0 and <= int.MaxValue ? (int)d : throw new ConfigException($"{source}: field '{field}[{i}]' must be an integer.")).ToArray(),
            _ => [Int(field)!.Value],
        };
    }
}
