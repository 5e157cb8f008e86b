using System.Text.Json.Nodes;
using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Core.Tests.Tokenization;

/// <summary>
/// The chat templates of the models this toolkit serves, read from tokenizer_config.json as the released models hold
/// them, rendered as transformers renders them (trim_blocks and lstrip_blocks on); and every way a template can be
/// wrong ends in a <see cref="ChatTemplateException"/>, never a crash.
/// </summary>
public sealed class ChatTemplateModelTests
{
    // allenai/Llama-3.1-Tulu-3-8B's tokenizer_config.json "chat_template" (eos_token <|end_of_text|>).
    private const string Tulu3 =
        "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'user' %}" +
        "{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}" +
        "{{ '<|assistant|>\\n'  + message['content'] + eos_token + '\\n' }}{% else %}{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}" +
        "{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}";

    // allenai/OLMo-2-1124-7B-Instruct's: the same with the bos token first (bos_token and eos_token <|endoftext|>).
    private const string Olmo2Instruct = "{{ bos_token }}" + Tulu3;

    [Fact]
    public void Tulu3_FromTokenizerConfig_RendersOneTurnAsTheModelWasTrained()
    {
        using var temp = new TempDirectory("tulu3");
        WriteConfig(temp.Path, Tulu3, bos: "<|begin_of_text|>", eos: "<|end_of_text|>");
        var template = ChatTemplate.TryLoad(temp.Path)!;

        var finished = template.Render([new ChatMessage("user", "What is 2+2?"), new ChatMessage("assistant", "4")], null, null, addGenerationPrompt: false);
        var prompt = template.Render([new ChatMessage("user", "Hi")], null, null, addGenerationPrompt: false);

        Assert.Equal("<|user|>\nWhat is 2+2?\n<|assistant|>\n4<|end_of_text|>", finished);
        Assert.Equal("<|user|>\nHi\n", prompt);
    }

    [Fact]
    public void Tulu3_MultiTurnWithSystem_EndsNonFinalAssistantTurnsWithEosAndANewline()
    {
        var template = ChatTemplate.Parse(Tulu3, eosToken: "<|end_of_text|>");

        var text = template.Render(
            [new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"), new ChatMessage("user", "2+2?")], null, null, addGenerationPrompt: true);

        Assert.Equal("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<|end_of_text|>\n<|user|>\n2+2?\n<|assistant|>\n", text);
    }

    [Fact]
    public void Olmo2Instruct_FromTokenizerConfig_StartsWithItsBosToken()
    {
        using var temp = new TempDirectory("olmo2-instruct");
        WriteConfig(temp.Path, Olmo2Instruct, bos: "<|endoftext|>", eos: "<|endoftext|>", asObjects: true);
        var template = ChatTemplate.TryLoad(temp.Path)!;

        var text = template.Render([new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"), new ChatMessage("user", "Bye")], null, null, addGenerationPrompt: true);

        Assert.Equal("<|endoftext|>", template.BosToken);
        Assert.Equal("<|endoftext|><|user|>\nHi\n<|assistant|>\nHello<|endoftext|>\n<|user|>\nBye\n<|assistant|>\n", text);
    }

    [Fact]
    public void MultiLineTemplates_RenderWithTrimBlocksAndLstripBlocks_AsTransformersDoes()
    {
        const string Source = "{% for message in messages %}\n    {% if message['role'] == 'user' %}\n<|user|>{{ message['content'] }}\n    {% else %}\n<|bot|>{{ message['content'] }}\n    {% endif %}\n{% endfor %}";

        var text = ChatTemplate.Parse(Source).Render([new ChatMessage("user", "a"), new ChatMessage("assistant", "b")], null, null, false);

        Assert.Equal("<|user|>a\n<|bot|>b\n", text);
    }

    [Fact]
    public void TryLoad_PrefersChatTemplateJinja_AndTakesTheDefaultOfNamedTemplates()
    {
        using var withJinja = new TempDirectory("jinja");
        WriteConfig(withJinja.Path, "from the config", bos: null, eos: "</s>");
        File.WriteAllText(Path.Combine(withJinja.Path, "chat_template.jinja"), "{{ messages[0]['content'] }}{{ eos_token }}");
        using var named = new TempDirectory("named");
        File.WriteAllText(Path.Combine(named.Path, "tokenizer_config.json"), new JsonObject
        {
            ["chat_template"] = new JsonArray(new JsonObject { ["name"] = "tool_use", ["template"] = "tools" }, new JsonObject { ["name"] = "default", ["template"] = "plain {{ messages | length }}" }),
        }.ToJsonString());

        Assert.Equal("hi</s>", ChatTemplate.TryLoad(withJinja.Path)!.Render([new ChatMessage("user", "hi")], null, null, false));
        Assert.Equal("plain 1", ChatTemplate.TryLoad(named.Path)!.Render([new ChatMessage("user", "hi")], null, null, false));
        using var none = new TempDirectory("none");
        Assert.Null(ChatTemplate.TryLoad(none.Path));
    }

    [Theory]
    [InlineData("{{ message. }}", "'.' must be followed by a name")]
    [InlineData("{% if true %}x", "missing 'endif'")]
    [InlineData("{{ 'unterminated }}", "unterminated string")]
    [InlineData("{{ raise_exception('no closing' }}", "missing ')'")]
    [InlineData("{{ messages[0 }}", "missing ']'")]
    [InlineData("{{ x", "unclosed tag")]
    [InlineData("{% for in messages %}{% endfor %}", "unsupported loop")]
    [InlineData("{% set = 1 %}", "unsupported assignment")]
    [InlineData("{{ x is odd }}", "unsupported test")]
    [InlineData("{{ x | }}", "'|' without a filter")]
    [InlineData("{{ }}", "expression ends early")]
    public void Parse_OfABrokenTemplate_IsAChatTemplateError(string source, string expected)
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeepNesting_IsRefused_BeforeItCanExhaustTheStack()
    {
        var blocks = string.Concat(Enumerable.Repeat("{% if true %}", 5000)) + string.Concat(Enumerable.Repeat("{% endif %}", 5000));
        var parentheses = "{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}";
        var nots = "{{ " + string.Concat(Enumerable.Repeat("not ", 5000)) + "true }}";

        Assert.Contains("nested deeper", Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(blocks)).Message, StringComparison.Ordinal);
        Assert.Contains("nested deeper", Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(parentheses)).Message, StringComparison.Ordinal);
        Assert.Contains("nested deeper", Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(nots)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_ThatLoopsOverANumberOrGrowsWithoutBound_IsAChatTemplateError()
    {
        var loop = ChatTemplate.Parse("{% for x in 5 %}{% endfor %}");
        var growing = ChatTemplate.Parse("{% for m in messages %}{% for n in messages %}{% for o in messages %}{{ m['content'] }}{% endfor %}{% endfor %}{% endfor %}");
        var many = Enumerable.Range(0, 200).Select(_ => new ChatMessage("user", new string('x', 1000))).ToList();

        Assert.Contains("cannot loop over", Assert.Throws<ChatTemplateException>(() => loop.Render([], null, null, false)).Message, StringComparison.Ordinal);
        Assert.Contains("exceeded", Assert.Throws<ChatTemplateException>(() => growing.Render(many, null, null, false)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{garbage", "not valid JSON")]
    [InlineData("[1, 2]", "must hold a JSON object")]
    [InlineData("""{"chat_template": 5}""", "must be a string or a list")]
    [InlineData("""{"chat_template": [{"name": "tool_use", "template": "x"}]}""", "none is named \"default\"")]
    public void TryLoad_OfABrokenTokenizerConfig_NamesTheFile(string json, string expected)
    {
        using var temp = new TempDirectory("bad-config");
        File.WriteAllText(Path.Combine(temp.Path, "tokenizer_config.json"), json);

        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.TryLoad(temp.Path));

        Assert.Contains("tokenizer_config.json", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    private static void WriteConfig(string folder, string template, string? bos, string? eos, bool asObjects = false)
    {
        JsonNode? Token(string? content) => content is null ? null : asObjects ? new JsonObject { ["content"] = content, ["special"] = true } : JsonValue.Create(content);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), new JsonObject { ["bos_token"] = Token(bos), ["eos_token"] = Token(eos), ["chat_template"] = template }.ToJsonString());
    }
}
