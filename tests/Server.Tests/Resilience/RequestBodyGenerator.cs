using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Hostile REST bodies for the fuzz suite: well-formed JSON objects whose fields (known and unknown) take values of every
/// type and range, and byte-level mutations (flips, cuts, insertions) of valid bodies.
/// </summary>
public static class RequestBodyGenerator
{
    private static readonly string[] Fields =
    [
        "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "n", "stream", "stop",
        "stop_token_ids", "seed", "logprobs", "top_logprobs", "echo", "ignore_eos", "adapters", "routing", "stream_options",
        "return_token_ids", "presence_penalty", "frequency_penalty", "user", "lora_name", "lora_path", "tenant", "response_format", "tools",
        "tokens", "add_special_tokens", "return_token_strs", "add_generation_prompt", "chat_template_kwargs", "cache_salt",
        "logit_bias", "repetition_penalty", "min_p", "min_tokens", "allowed_token_ids", "skip_special_tokens", "include_stop_str_in_output",
        "spaces_between_special_tokens", "use_beam_search", "prompt_logprobs", "bad_words", "priority", "truncate_prompt_tokens",
        "continue_final_message", "return_tokens_as_token_ids", "suffix", "tool_choice", "reasoning_effort", "functions", "function_call",
        "modalities", "prediction", "audio", "parallel_tool_calls", "guided_grammar",
        "input", "instructions", "max_output_tokens", "text", "previous_response_id", "store", "metadata", "truncation", "include", "reasoning",
        "encoding_format", "dimensions", "normalize", "inputs", "text_1", "text_2", "query", "documents", "top_n",
    ];

    private static Gen<T> Pick<T>(params T[] items) => Gen.Int[0, items.Length - 1].Select(i => items[i]);

    private static readonly string[] Models = ["serving-demo-tiny", "demo-all-r8", "demo-mlp-r4", "auto", "", "nope", "../demo-all-r8", "DEMO-ALL-R8"];

    private static readonly Gen<JsonNode?> Scalar = Gen.OneOf(
        Gen.Int[0, 0].Select(_ => (JsonNode?)null),
        Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
        Gen.Int[-3, 40].Select(i => (JsonNode?)JsonValue.Create(i)),
        Pick(int.MinValue, int.MaxValue, 2048, 100_000).Select(i => (JsonNode?)JsonValue.Create(i)),
        Pick(0.0, -0.5, 0.5, 1.0, 1.5, 2.5, 1e308, -1e308, 5e-324).Select(d => (JsonNode?)JsonValue.Create(d)),
        Pick(Models).Select(s => (JsonNode?)JsonValue.Create(s)),
        Gen.String[0, 12].Select(s => (JsonNode?)JsonValue.Create(s)),
        Pick("user", "system", "assistant", "tool", "\u0000", "🙂", "e\u0301", "/tmp", "s3://", "../../etc/passwd").Select(s => (JsonNode?)JsonValue.Create(s)));

    private static readonly Gen<JsonNode?> Value = Gen.Recursive<JsonNode?>((depth, self) => depth >= 3
        ? Scalar
        : Gen.Frequency(
            (6, Scalar),
            (2, self.Array[0, 4].Select(items => (JsonNode?)new JsonArray(items.Select(i => i?.DeepClone()).ToArray()))),
            (2, Gen.Select(Pick<string>(["role", "content", "id", "weight", "type", "text", "candidates", "top_k", "include_usage", .. Fields]), self)
                .Array[0, 3].Select(kvs =>
                {
                    var o = new JsonObject();
                    foreach (var (k, v) in kvs)
                        o[k] = v?.DeepClone();
                    return (JsonNode?)o;
                }))));

    /// <summary>A JSON object starting from a small valid request, with 0–6 fields set to generated values or removed.</summary>
    public static readonly Gen<string> Structured = Gen.Select(Gen.Int[0, 2], Gen.Select(Gen.Int[0, Fields.Length - 1], Value, Gen.Int[0, 5]).Array[0, 6])
        .Select((shape, edits) =>
        {
            var body = shape switch
            {
                0 => new JsonObject { ["model"] = "serving-demo-tiny", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }), ["max_tokens"] = 2 },
                1 => new JsonObject { ["model"] = "serving-demo-tiny", ["prompt"] = "hi", ["max_tokens"] = 2 },
                _ => new JsonObject { ["model"] = "serving-demo-tiny", ["input"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }), ["max_output_tokens"] = 2 },
            };
            foreach (var (field, value, op) in edits)
            {
                if (op == 0)
                    body.Remove(Fields[field]);
                else
                    body[Fields[field]] = value?.DeepClone();
            }

            return body.ToJsonString();
        });

    private static readonly string[] ToolNames = ["get_weather", "f", "", "a.b", "🙂", "\u0000", "../../etc/passwd", "<tool_call>", "x\"y"];

    /// <summary>Function parameters: schemas the constraint compiler takes, ones it refuses, and JSON that is no schema.</summary>
    private static readonly string[] Parameters =
    [
        """{"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]}""",
        """{"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "integer", "minimum": 1, "maximum": 3}}}""",
        """{"type": "object", "properties": {"next": {"$ref": "#"}}}""",
        """{"$ref": "#/$defs/missing"}""",
        """{"type": "object", "patternProperties": {"a": {}}}""",
        """{"type": "string", "pattern": "(a|aa)*b"}""",
        """{"enum": [{"$ref": "#"}, 1, null]}""",
        """{}""", """[]""", "\"object\"", """{"type": "object", "properties": {}, "additionalProperties": false}""",
    ];

    private static readonly Gen<JsonNode?> Tool = Gen.Select(Pick("function", "function", "retrieval", ""), Pick(ToolNames), Gen.Int[-1, Parameters.Length - 1])
        .Select((type, name, parameters) =>
        {
            var function = new JsonObject { ["name"] = name };
            if (parameters >= 0)
                function["parameters"] = JsonNode.Parse(Parameters[parameters]);
            return (JsonNode?)new JsonObject { ["type"] = type, ["function"] = function };
        });

    private static readonly Gen<JsonNode?> ToolChoiceValue = Gen.OneOf(
        Pick("auto", "none", "required", "any").Select(c => (JsonNode?)JsonValue.Create(c)),
        Pick(ToolNames).Select(n => (JsonNode?)new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = n } }));

    /// <summary>A structured chat body given 0–3 tools, a <c>tool_choice</c> and sometimes <c>parallel_tool_calls</c>.</summary>
    public static readonly Gen<string> WithTools = Gen.Select(Structured, Tool.Array[0, 3], ToolChoiceValue, Gen.Int[0, 2])
        .Select((json, tools, choice, parallel) =>
        {
            var body = JsonNode.Parse(json)!.AsObject();
            body.Remove("prompt");
            body["messages"] ??= new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
            body["tools"] = new JsonArray(tools.Select(t => t?.DeepClone()).ToArray());
            body["tool_choice"] = choice?.DeepClone();
            if (parallel < 2)
                body["parallel_tool_calls"] = parallel == 1;
            return body.ToJsonString();
        });

    /// <summary>Grammar rule bodies: literals, classes, repetitions, references to the rules a–c (recursive ones included).</summary>
    private static readonly Gen<string> GrammarAlternative = Pick(
        "\"x\"", "'y' a", "[a-c]+", "[^\\n]{0,4}", ".", "a b", "\"(\" a \")\"", "a a", "b{2,3}", "c*", "\"\\u00e9\"", "(a | \"z\")?", "a{1000}",
        "\"", "[z-a]", "d", "a ::=", "(", "\"\\q\"", "{3}", "\"\U0010FFFF\"", "[\\x00-\\x7f]*", "root");

    /// <summary>
    /// A grammar of a root and rules a–c from generated alternatives — valid ones, recursive ones (a rule twice in its own
    /// body multiplies its copies), ones past the state bound (a{1000} over recursive rules), undefined references and
    /// malformed text.
    /// </summary>
    private static readonly Gen<string> Grammar = GrammarAlternative.Array[1, 3].Array[4].Select(rules =>
        string.Join("\n", rules.Select((alternatives, i) => $"{(i == 0 ? "root" : ((char)('a' + i - 1)).ToString())} ::= {string.Join(" | ", alternatives)}")));

    /// <summary>A structured body with a generated GBNF grammar as vLLM's <c>structured_outputs.grammar</c> or <c>guided_grammar</c>.</summary>
    public static readonly Gen<string> WithGrammar = Gen.Select(Structured, Grammar, Gen.Bool)
        .Select((json, grammar, older) =>
        {
            var body = JsonNode.Parse(json)!.AsObject();
            foreach (string field in (ReadOnlySpan<string>)["response_format", "structured_outputs", "guided_grammar", "tools", "tool_choice"])
                body.Remove(field);
            if (older)
                body["guided_grammar"] = grammar;
            else
                body["structured_outputs"] = new JsonObject { ["grammar"] = grammar };
            return body.ToJsonString();
        });

    private static readonly Gen<JsonNode?> PredictionContent = Gen.OneOf(
        Gen.String[0, 200].Select(s => (JsonNode?)JsonValue.Create(s)),
        Pick("Hello Hello Hello Hello", "{\"a\": 1}", "\u0000\uFFFD", "🙂🙂🙂", "").Select(s => (JsonNode?)JsonValue.Create(s)),
        Gen.String[0, 20].Array[0, 4].Select(parts => (JsonNode?)new JsonArray(parts.Select(p => (JsonNode?)new JsonObject { ["type"] = "text", ["text"] = p }).ToArray())),
        Scalar);

    /// <summary>A structured body with OpenAI's <c>prediction</c>: well-formed ones (text, text parts), and ones of another type or shape.</summary>
    public static readonly Gen<string> WithPrediction = Gen.Select(Structured, Pick("content", "content", "content", "file", ""), PredictionContent)
        .Select((json, type, content) =>
        {
            var body = JsonNode.Parse(json)!.AsObject();
            body["prediction"] = new JsonObject { ["type"] = type, ["content"] = content?.DeepClone() };
            return body.ToJsonString();
        });

    /// <summary>A valid body's UTF-8 bytes with 1–4 byte flips, a cut, or inserted bytes — mostly not JSON any more.</summary>
    public static readonly Gen<byte[]> Mutated = Gen.Select(Structured, Gen.Select(Gen.Int[0, 2], Gen.Int[0, 10_000], Gen.Byte).Array[1, 4])
        .Select((json, edits) =>
        {
            var bytes = new List<byte>(Encoding.UTF8.GetBytes(json));
            foreach (var (op, at, b) in edits)
            {
                if (bytes.Count == 0)
                    break;
                int i = at % bytes.Count;
                switch (op)
                {
                    case 0: bytes[i] ^= (byte)(b | 1); break;
                    case 1: bytes.RemoveRange(i, bytes.Count - i); break;
                    default: bytes.Insert(i, b); break;
                }
            }

            return bytes.ToArray();
        });

    /// <summary>
    /// A structured body with 1–3 extra members written right after an opening brace — often a key the object already
    /// has (<c>role</c>, <c>content</c>, a field), which JSON allows and JsonObject-built bodies never hold.
    /// </summary>
    public static readonly Gen<string> RepeatedKeys = Gen.Select(Structured,
            Gen.Select(Gen.Int[0, 10_000], Pick<string>(["role", "content", "name", "type", "function", .. Fields]), Value).Array[1, 3])
        .Select((json, inserts) =>
        {
            var text = new StringBuilder(json);
            foreach (var (at, key, value) in inserts)
            {
                var braces = Enumerable.Range(0, text.Length).Where(i => text[i] == '{').ToArray();
                int brace = braces[at % braces.Length];
                text.Insert(brace + 1, $"{JsonValue.Create(key).ToJsonString()}:{value?.ToJsonString() ?? "null"},");
            }

            return text.ToString();
        });
}
