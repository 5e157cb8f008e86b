using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Core.Tests.Tokenization;

public sealed class ChatTemplateTests
{
    // The template of allenai/OLMo-2-*-Instruct, as its tokenizer_config.json holds it.
    private const string Olmo2Instruct =
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}" +
        "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}" +
        "{% if not loop.last %}{{ '<|assistant|>\\n'  + message['content'] + eos_token + '\\n' }}{% else %}{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}" +
        "{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}";

    [Fact]
    public void Render_Olmo2InstructTemplate_ProducesTheExpectedPrompt()
    {
        var template = ChatTemplate.Parse(Olmo2Instruct);
        var text = template.Render([new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"), new ChatMessage("user", "2+2?")], "", "<|endoftext|>", addGenerationPrompt: true);
        Assert.Equal("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<|endoftext|>\n<|user|>\n2+2?\n<|assistant|>\n", text);
    }

    [Fact]
    public void Render_SupportsWhitespaceControlSetFiltersAndTests()
    {
        var template = ChatTemplate.Parse("{%- set sep = '|' -%}\n  {% for m in messages %}{{- m.role | upper ~ sep ~ m.content | trim -}} {% if m.name is defined %}x{% endif %}{% endfor %}{{ messages | length }}");
        Assert.Equal("USER|aASSISTANT|b2", template.Render([new ChatMessage("user", " a "), new ChatMessage("assistant", "b")], null, null, false));
    }

    [Theory]
    [InlineData("{% macro x() %}{% endmacro %}", "unsupported statement")]
    [InlineData("{{ messages | tojson }}", "unsupported filter")]
    [InlineData("{% for m in messages %}", "missing 'endfor'")]
    [InlineData("{{ 1 * 2 }}", "unsupported operator")]
    public void Parse_RejectsUnsupportedJinja_NamingTheConstruct(string source, string expected)
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RaiseException_InTheTemplate_BecomesAClearError()
    {
        var template = ChatTemplate.Parse("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}");
        var error = Assert.Throws<ChatTemplateException>(() => template.Render([new ChatMessage("assistant", "x")], null, null, false));
        Assert.Contains("first message must be from the user", error.Message, StringComparison.Ordinal);
    }
}
