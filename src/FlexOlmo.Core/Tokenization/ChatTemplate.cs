using System.Globalization;
using System.Text;
using System.Text.Json;

namespace FlexOlmo.Core.Tokenization;

/// <summary>One message of a chat.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// Renders a Hugging Face chat template (tokenizer_config.json "chat_template") for a list of messages.
/// </summary>
/// <remarks>
/// Written by hand because no served package renders Jinja (only Liquid engines are served). It interprets the subset
/// chat templates use: text, <c>{{ }}</c>, <c>{% if/elif/else/endif %}</c>, <c>{% for x in y %}</c> with <c>loop.*</c>,
/// <c>{% set %}</c>, whitespace control (<c>-</c>), string/number/boolean literals, <c>+ ~ == != and or not in</c>,
/// attribute and item access, the filters trim/upper/lower/length and <c>raise_exception</c>. Anything else is a
/// <see cref="ChatTemplateException"/> naming the construct, never a silent misrender.
/// </remarks>
public sealed class ChatTemplate
{
    private const int MaxOutputChars = 1 << 22;
    private readonly List<Node> _nodes;

    private ChatTemplate(string source, string? bosToken, string? eosToken)
    {
        var tokens = Lex(source);
        var position = 0;
        _nodes = ParseBlock(tokens, ref position, []);
        BosToken = bosToken;
        EosToken = eosToken;
    }

    /// <summary>The bos_token the model's tokenizer_config.json names (what {{ bos_token }} renders), or null.</summary>
    public string? BosToken { get; }

    /// <summary>The eos_token the model's tokenizer_config.json names, or null.</summary>
    public string? EosToken { get; }

    public static ChatTemplate Parse(string source, string? bosToken = null, string? eosToken = null) => new(source, bosToken, eosToken);

    /// <summary>
    /// The template of a model folder, as transformers finds it: chat_template.jinja, else tokenizer_config.json's
    /// "chat_template" (a string, or a list of named templates of which "default" is used); null when it has none.
    /// </summary>
    public static ChatTemplate? TryLoad(string folder)
    {
        const long MaxBytes = 8 << 20;
        var jinja = Path.Combine(folder, "chat_template.jinja");
        var path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path))
        {
            return !File.Exists(jinja) ? null
                : new FileInfo(jinja).Length <= MaxBytes ? Parse(File.ReadAllText(jinja)) : throw new ChatTemplateException($"{jinja}: larger than 8 MiB.");
        }

        if (new FileInfo(path).Length > MaxBytes)
        {
            throw new ChatTemplateException($"{path}: larger than 8 MiB; not a tokenizer config.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new ChatTemplateException($"{path}: not valid JSON ({e.Message}).");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ChatTemplateException($"{path}: must hold a JSON object.");
            }

            var bos = SpecialToken(root, "bos_token");
            var eos = SpecialToken(root, "eos_token");
            if (File.Exists(jinja))
            {
                return new FileInfo(jinja).Length <= MaxBytes ? Parse(File.ReadAllText(jinja), bos, eos) : throw new ChatTemplateException($"{jinja}: larger than 8 MiB.");
            }

            if (!root.TryGetProperty("chat_template", out var template) || template.ValueKind == JsonValueKind.Null)
            {
                return null;
            }

            if (template.ValueKind == JsonValueKind.String)
            {
                return Parse(template.GetString()!, bos, eos);
            }

            if (template.ValueKind == JsonValueKind.Array)
            {
                foreach (var named in template.EnumerateArray())
                {
                    if (named.ValueKind == JsonValueKind.Object && named.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && name.GetString() == "default"
                        && named.TryGetProperty("template", out var text) && text.ValueKind == JsonValueKind.String)
                    {
                        return Parse(text.GetString()!, bos, eos);
                    }
                }

                throw new ChatTemplateException($"{path}: 'chat_template' lists named templates but none is named \"default\".");
            }

            throw new ChatTemplateException($"{path}: 'chat_template' must be a string or a list of {{name, template}}.");
        }
    }

    /// <summary>A special token of tokenizer_config.json: a string, or an object with its "content".</summary>
    private static string? SpecialToken(JsonElement root, string name) =>
        !root.TryGetProperty(name, out var token) ? null
        : token.ValueKind == JsonValueKind.String ? token.GetString()
        : token.ValueKind == JsonValueKind.Object && token.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String ? content.GetString()
        : null;

    /// <summary>Renders the conversation (with the assistant prompt appended when <paramref name="addGenerationPrompt"/>).</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, string? bosToken, string? eosToken, bool addGenerationPrompt)
    {
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["bos_token"] = bosToken ?? BosToken ?? string.Empty,
            ["eos_token"] = eosToken ?? EosToken ?? string.Empty,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        var output = new StringBuilder();
        Execute(_nodes, scope, output);
        return output.ToString();
    }

    private static void Execute(List<Node> nodes, Dictionary<string, object?> scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    break;
                case OutputNode expression:
                    output.Append(Stringify(expression.Expression.Evaluate(scope)));
                    break;
                case SetNode set:
                    scope[set.Name] = set.Value.Evaluate(scope);
                    break;
                case IfNode branch:
                    foreach (var (condition, body) in branch.Branches)
                    {
                        if (condition is null || Truthy(condition.Evaluate(scope)))
                        {
                            Execute(body, scope, output);
                            break;
                        }
                    }

                    break;
                case ForNode loop:
                    var items = loop.Items.Evaluate(scope) switch
                    {
                        IEnumerable<object?> list => list.ToList(),
                        string s => s.Select(c => (object?)c.ToString()).ToList(),
                        null => [],
                        var other => throw new ChatTemplateException($"cannot loop over {other.GetType().Name}"),
                    };
                    for (var i = 0; i < items.Count; i++)
                    {
                        var inner = new Dictionary<string, object?>(scope, StringComparer.Ordinal)
                        {
                            [loop.Variable] = items[i],
                            ["loop"] = new Dictionary<string, object?>
                            {
                                ["index"] = (long)i + 1,
                                ["index0"] = (long)i,
                                ["first"] = i == 0,
                                ["last"] = i == items.Count - 1,
                                ["length"] = (long)items.Count,
                            },
                        };
                        Execute(loop.Body, inner, output);
                    }

                    break;
            }

            if (output.Length > MaxOutputChars)
            {
                throw new ChatTemplateException("rendering exceeded 4 M characters");
            }
        }
    }

    private static string Stringify(object? value) => value switch
    {
        null => string.Empty,
        bool b => b ? "True" : "False",
        long n => n.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };

    private static bool Truthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        long n => n != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    // ---- lexing: text, {{ expression }}, {% statement %}, {# comment #}. As transformers renders (trim_blocks and
    // lstrip_blocks on): the first newline after a statement or comment is dropped, and spaces before one on its own
    // line are too; '-' trims all whitespace on that side, '+' keeps it. ----
    private static List<(char Kind, string Text)> Lex(string source)
    {
        var tokens = new List<(char, string)>();
        var i = 0;
        var trimNext = false;
        var dropNewline = false;
        while (i < source.Length)
        {
            var open = IndexOfTag(source, i);
            var raw = source[i..(open < 0 ? source.Length : open)];
            var text = raw;
            if (trimNext)
            {
                text = text.TrimStart();
            }
            else if (dropNewline)
            {
                text = text.StartsWith("\r\n", StringComparison.Ordinal) ? text[2..] : text.StartsWith('\n') ? text[1..] : text;
            }

            var kind = open >= 0 ? source[open + 1] : ' ';
            var modifier = open >= 0 && open + 2 < source.Length ? source[open + 2] : ' ';
            if (modifier == '-')
            {
                text = text.TrimEnd();
            }
            else if (kind is '%' or '#' && modifier != '+')
            {
                text = LeftStripBlock(raw, text, atStart: i == 0);
            }

            if (text.Length > 0)
            {
                tokens.Add(('t', text));
            }

            if (open < 0)
            {
                break;
            }

            var close = source.IndexOf(kind == '{' ? "}}" : kind == '%' ? "%}" : "#}", open + 2, StringComparison.Ordinal);
            if (close < 0)
            {
                throw new ChatTemplateException($"unclosed tag at character {open}");
            }

            var body = source[(open + 2)..close];
            trimNext = body.EndsWith('-');
            dropNewline = kind is '%' or '#' && !body.EndsWith('+');
            body = body.Trim('-', '+').Trim();
            if (kind != '#')
            {
                tokens.Add((kind == '{' ? 'e' : 's', body));
            }

            i = close + 2;
        }

        return tokens;
    }

    /// <summary>lstrip_blocks: spaces and tabs between a line's start and a block tag that begins the line are dropped.</summary>
    private static string LeftStripBlock(string raw, string text, bool atStart)
    {
        var lineStart = raw.LastIndexOf('\n') + 1;
        if ((lineStart == 0 && !atStart) || raw.AsSpan(lineStart).IndexOfAnyExcept(' ', '\t') >= 0)
        {
            return text; // the tag does not begin its line
        }

        return text.TrimEnd(' ', '\t');
    }

    private static int IndexOfTag(string source, int from)
    {
        for (var i = from; i + 1 < source.Length; i++)
        {
            if (source[i] == '{' && source[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }

        return -1;
    }

    // ---- parsing statements into a tree ----
    private const int MaxDepth = 64;

    private static List<Node> ParseBlock(List<(char Kind, string Text)> tokens, ref int position, string[] terminators, int depth = 0)
    {
        if (depth > MaxDepth)
        {
            throw new ChatTemplateException($"blocks nested deeper than {MaxDepth}");
        }

        var nodes = new List<Node>();
        while (position < tokens.Count)
        {
            var (kind, text) = tokens[position];
            if (kind == 't')
            {
                nodes.Add(new TextNode(text));
                position++;
                continue;
            }

            if (kind == 'e')
            {
                nodes.Add(new OutputNode(Expression.Parse(text)));
                position++;
                continue;
            }

            var keyword = text.Split(' ', 2)[0];
            if (terminators.Contains(keyword))
            {
                return nodes;
            }

            position++;
            switch (keyword)
            {
                case "if":
                    var branches = new List<(Expression?, List<Node>)>();
                    var condition = Expression.Parse(text[2..]);
                    while (true)
                    {
                        var body = ParseBlock(tokens, ref position, ["elif", "else", "endif"], depth + 1);
                        branches.Add((condition, body));
                        if (position >= tokens.Count)
                        {
                            throw new ChatTemplateException("'if' without 'endif'");
                        }

                        var next = tokens[position].Text;
                        position++;
                        if (next.StartsWith("elif", StringComparison.Ordinal))
                        {
                            condition = Expression.Parse(next[4..]);
                        }
                        else if (next == "else")
                        {
                            var rest = ParseBlock(tokens, ref position, ["endif"], depth + 1);
                            branches.Add((null, rest));
                            position++;
                            break;
                        }
                        else
                        {
                            break;
                        }
                    }

                    nodes.Add(new IfNode(branches));
                    break;
                case "for":
                    var parts = text[3..].Split(" in ", 2, StringSplitOptions.TrimEntries);
                    if (parts.Length != 2 || !IsName(parts[0]))
                    {
                        throw new ChatTemplateException($"unsupported loop '{text}' (only 'for name in expression')");
                    }

                    var loopBody = ParseBlock(tokens, ref position, ["endfor"], depth + 1);
                    position++;
                    nodes.Add(new ForNode(parts[0], Expression.Parse(parts[1]), loopBody));
                    break;
                case "set":
                    var assignment = text[3..].Split('=', 2, StringSplitOptions.TrimEntries);
                    if (assignment.Length != 2 || !IsName(assignment[0]))
                    {
                        throw new ChatTemplateException($"unsupported assignment '{text}'");
                    }

                    nodes.Add(new SetNode(assignment[0], Expression.Parse(assignment[1])));
                    break;
                default:
                    throw new ChatTemplateException($"unsupported statement '{{% {text} %}}'");
            }
        }

        if (terminators.Length > 0)
        {
            throw new ChatTemplateException($"missing '{terminators[^1]}'");
        }

        return nodes;
    }

    private static bool IsName(string text) => text.Length > 0 && (char.IsLetter(text[0]) || text[0] == '_') && text.All(c => char.IsLetterOrDigit(c) || c == '_');

    private abstract record Node;

    private sealed record TextNode(string Text) : Node;

    private sealed record OutputNode(Expression Expression) : Node;

    private sealed record SetNode(string Name, Expression Value) : Node;

    private sealed record IfNode(List<(Expression? Condition, List<Node> Body)> Branches) : Node;

    private sealed record ForNode(string Variable, Expression Items, List<Node> Body) : Node;

    /// <summary>A parsed expression: a tiny precedence-climbing parser over the tokens of one tag.</summary>
    private abstract class Expression
    {
        public abstract object? Evaluate(Dictionary<string, object?> scope);

        [ThreadStatic]
        private static int _depth;

        public static Expression Parse(string text)
        {
            var tokens = Tokenize(text);
            var position = 0;
            _depth = 0;
            var expression = ParseOr(tokens, ref position);
            if (position != tokens.Count)
            {
                throw new ChatTemplateException($"unexpected '{tokens[position]}' in '{text}'");
            }

            return expression;
        }

        private static List<string> Tokenize(string text)
        {
            var tokens = new List<string>();
            var i = 0;
            while (i < text.Length)
            {
                var c = text[i];
                if (char.IsWhiteSpace(c))
                {
                    i++;
                }
                else if (c is '\'' or '"')
                {
                    var end = i + 1;
                    var literal = new StringBuilder();
                    while (end < text.Length && text[end] != c)
                    {
                        if (text[end] == '\\' && end + 1 < text.Length)
                        {
                            end++;
                            literal.Append(text[end] switch { 'n' => '\n', 't' => '\t', var other => other });
                        }
                        else
                        {
                            literal.Append(text[end]);
                        }

                        end++;
                    }

                    if (end >= text.Length)
                    {
                        throw new ChatTemplateException($"unterminated string in '{text}'");
                    }

                    tokens.Add("\u0001" + literal);
                    i = end + 1;
                }
                else if (char.IsLetterOrDigit(c) || c == '_')
                {
                    var end = i;
                    while (end < text.Length && (char.IsLetterOrDigit(text[end]) || text[end] == '_'))
                    {
                        end++;
                    }

                    tokens.Add(text[i..end]);
                    i = end;
                }
                else
                {
                    var two = i + 1 < text.Length ? text.Substring(i, 2) : string.Empty;
                    if (two is "==" or "!=")
                    {
                        tokens.Add(two);
                        i += 2;
                    }
                    else if ("+~()[].|,".Contains(c, StringComparison.Ordinal))
                    {
                        tokens.Add(c.ToString());
                        i++;
                    }
                    else
                    {
                        throw new ChatTemplateException($"unsupported operator '{c}' in '{text}'");
                    }
                }
            }

            return tokens;
        }

        private static Expression ParseOr(List<string> t, ref int p)
        {
            if (++_depth > MaxDepth)
            {
                throw new ChatTemplateException($"expression nested deeper than {MaxDepth}");
            }

            var left = ParseAnd(t, ref p);
            while (p < t.Count && t[p] == "or")
            {
                p++;
                var right = ParseAnd(t, ref p);
                var l = left;
                left = new Lambda(s => Truthy(l.Evaluate(s)) || Truthy(right.Evaluate(s)));
            }

            _depth--;
            return left;
        }

        private static Expression ParseAnd(List<string> t, ref int p)
        {
            var left = ParseNot(t, ref p);
            while (p < t.Count && t[p] == "and")
            {
                p++;
                var right = ParseNot(t, ref p);
                var l = left;
                left = new Lambda(s => Truthy(l.Evaluate(s)) && Truthy(right.Evaluate(s)));
            }

            return left;
        }

        private static Expression ParseNot(List<string> t, ref int p)
        {
            if (p < t.Count && t[p] == "not")
            {
                p++;
                if (++_depth > MaxDepth)
                {
                    throw new ChatTemplateException($"expression nested deeper than {MaxDepth}");
                }

                var inner = ParseNot(t, ref p);
                _depth--;
                return new Lambda(s => !Truthy(inner.Evaluate(s)));
            }

            return ParseComparison(t, ref p);
        }

        private static Expression ParseComparison(List<string> t, ref int p)
        {
            var left = ParseConcat(t, ref p);
            if (p < t.Count && t[p] is "==" or "!=" or "in" or "is")
            {
                var op = t[p++];
                var negated = op == "is" && p < t.Count && t[p] == "not" && ++p > 0;
                if (op == "is")
                {
                    var test = p < t.Count ? t[p++] : throw new ChatTemplateException("'is' without a test");
                    var l = left;
                    return test switch
                    {
                        "defined" => new Lambda(s => negated ^ (l.Evaluate(s) is not null)),
                        "none" => new Lambda(s => negated ^ (l.Evaluate(s) is null)),
                        "string" => new Lambda(s => negated ^ (l.Evaluate(s) is string)),
                        _ => throw new ChatTemplateException($"unsupported test 'is {test}'"),
                    };
                }

                var right = ParseConcat(t, ref p);
                var left2 = left;
                return op switch
                {
                    "==" => new Lambda(s => Equal(left2.Evaluate(s), right.Evaluate(s))),
                    "!=" => new Lambda(s => !Equal(left2.Evaluate(s), right.Evaluate(s))),
                    _ => new Lambda(s => right.Evaluate(s) switch
                    {
                        string haystack => haystack.Contains(Stringify(left2.Evaluate(s)), StringComparison.Ordinal),
                        IDictionary<string, object?> map => map.ContainsKey(Stringify(left2.Evaluate(s))),
                        IEnumerable<object?> list => list.Any(x => Equal(x, left2.Evaluate(s))),
                        _ => false,
                    }),
                };
            }

            return left;
        }

        private static Expression ParseConcat(List<string> t, ref int p)
        {
            var left = ParseFiltered(t, ref p);
            while (p < t.Count && t[p] is "+" or "~")
            {
                var op = t[p++];
                var right = ParseFiltered(t, ref p);
                var l = left;
                left = new Lambda(s =>
                {
                    var a = l.Evaluate(s);
                    var b = right.Evaluate(s);
                    return op == "+" && a is long x && b is long y ? x + y : Stringify(a) + Stringify(b);
                });
            }

            return left;
        }

        private static Expression ParseFiltered(List<string> t, ref int p)
        {
            var value = ParsePostfix(t, ref p);
            while (p < t.Count && t[p] == "|")
            {
                p++;
                var filter = p < t.Count ? t[p++] : throw new ChatTemplateException("'|' without a filter");
                var inner = value;
                value = filter switch
                {
                    "trim" => new Lambda(s => Stringify(inner.Evaluate(s)).Trim()),
                    "upper" => new Lambda(s => Stringify(inner.Evaluate(s)).ToUpperInvariant()),
                    "lower" => new Lambda(s => Stringify(inner.Evaluate(s)).ToLowerInvariant()),
                    "length" => new Lambda(s => inner.Evaluate(s) switch
                    {
                        string str => (long)str.Length,
                        System.Collections.ICollection c => (long)c.Count,
                        _ => 0L,
                    }),
                    _ => throw new ChatTemplateException($"unsupported filter '|{filter}'"),
                };
            }

            return value;
        }

        private static Expression ParsePostfix(List<string> t, ref int p)
        {
            var value = ParsePrimary(t, ref p);
            while (p < t.Count && t[p] is "." or "[")
            {
                var inner = value;
                if (t[p++] == ".")
                {
                    var name = p < t.Count && IsName(t[p]) ? t[p++] : throw new ChatTemplateException("'.' must be followed by a name");
                    value = new Lambda(s => Member(inner.Evaluate(s), name));
                }
                else
                {
                    var index = ParseOr(t, ref p);
                    if (p >= t.Count || t[p++] != "]")
                    {
                        throw new ChatTemplateException("missing ']'");
                    }

                    value = new Lambda(s => index.Evaluate(s) switch
                    {
                        long i when inner.Evaluate(s) is IList<object?> list => i >= 0 && i < list.Count ? list[(int)i] : i < 0 && -i <= list.Count ? list[list.Count + (int)i] : null,
                        var key => Member(inner.Evaluate(s), Stringify(key)),
                    });
                }
            }

            return value;
        }

        private static Expression ParsePrimary(List<string> t, ref int p)
        {
            if (p >= t.Count)
            {
                throw new ChatTemplateException("expression ends early");
            }

            var token = t[p++];
            if (token.StartsWith('\u0001'))
            {
                var literal = token[1..];
                return new Lambda(_ => literal);
            }

            if (token == "(")
            {
                var inner = ParseOr(t, ref p);
                if (p >= t.Count || t[p++] != ")")
                {
                    throw new ChatTemplateException("missing ')'");
                }

                return inner;
            }

            if (long.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
            {
                return new Lambda(_ => number);
            }

            switch (token)
            {
                case "true" or "True":
                    return new Lambda(_ => true);
                case "false" or "False":
                    return new Lambda(_ => false);
                case "none" or "None":
                    return new Lambda(_ => null);
                case "raise_exception":
                    if (p >= t.Count || t[p++] != "(")
                    {
                        throw new ChatTemplateException("raise_exception needs an argument");
                    }

                    var message = ParseOr(t, ref p);
                    if (p >= t.Count || t[p++] != ")")
                    {
                        throw new ChatTemplateException("missing ')' after raise_exception's argument");
                    }

                    return new Lambda(s => throw new ChatTemplateException($"the chat template refused the conversation: {Stringify(message.Evaluate(s))}"));
            }

            if (!IsName(token))
            {
                throw new ChatTemplateException($"unexpected '{token}'");
            }

            return new Lambda(s => s.TryGetValue(token, out var value) ? value : null);
        }

        private static object? Member(object? target, string name) =>
            target is IDictionary<string, object?> map && map.TryGetValue(name, out var value) ? value : null;

        private static bool Equal(object? a, object? b) => a is long x && b is long y ? x == y : Equals(a, b) || (a is not null && b is not null && Stringify(a) == Stringify(b) && a.GetType() == b.GetType());

        private sealed class Lambda(Func<Dictionary<string, object?>, object?> evaluate) : Expression
        {
            public override object? Evaluate(Dictionary<string, object?> scope) => evaluate(scope);
        }
    }
}

/// <summary>A chat template uses a construct this renderer does not support, or refuses the conversation.</summary>
public sealed class ChatTemplateException(string message) : Formats.FlexOlmoException($"chat template: {message}");
