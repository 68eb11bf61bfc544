using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// Reads an OpenAI Responses request (<c>POST /v1/responses</c>) into the chat request it means, so one path renders,
/// validates and generates both: <c>instructions</c> become the system message, <c>input</c> (a string, or items:
/// messages with text parts, the model's earlier <c>function_call</c>s and their <c>function_call_output</c>s) the
/// messages, function <c>tools</c> and <c>tool_choice</c> chat's, <c>text.format</c> the <c>response_format</c>,
/// <c>max_output_tokens</c> <c>max_tokens</c>. A stored conversation continued (<c>previous_response_id</c>) comes in as
/// the items before <c>input</c>; what needs state this server does not keep (<c>conversation</c>, <c>background</c>,
/// <c>prompt</c>) is a 400 naming the field, as is every field this server does not implement; a field that does not
/// change the output (<c>metadata</c>, <c>user</c>) is taken.
/// </summary>
internal static class ResponsesRequest
{
    private static readonly HashSet<string> Known = ["model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "temperature",
        "top_p", "parallel_tool_calls", "stream", "store", "metadata", "user", "truncation", "seed", "service_tier", "safety_identifier",
        "prompt_cache_key", "reasoning", "include", "top_logprobs", "top_k", "min_p", "repetition_penalty", "priority", "cache_salt", "previous_response_id"];

    /// <summary>Fields whose meaning needs state this server does not keep, each with why.</summary>
    private static readonly Dictionary<string, string> Stateful = new(StringComparer.Ordinal)
    {
        ["conversation"] = "conversations are not stored: send the conversation so far in 'input'",
        ["background"] = "background responses are not supported: stream the response instead",
        ["prompt"] = "stored prompt templates are not supported: send 'instructions' and 'input'",
    };

    /// <summary>
    /// The chat request body <paramref name="request"/> stands for, continuing the stored conversation
    /// <paramref name="earlier"/> (a JSON list of items; null when there is none); a 400 names the Responses field at fault.
    /// </summary>
    public static JsonObject ToChat(JsonElement request, JsonElement? earlier)
    {
        if (request.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest("the body must be a JSON object", null);
        var chat = new JsonObject();
        foreach (var field in request.EnumerateObject())
        {
            if (Stateful.TryGetValue(field.Name, out var why) && field.Value.ValueKind != JsonValueKind.Null)
                throw ApiException.BadRequest($"'{field.Name}' is not supported: {why}", field.Name);
            if (!Known.Contains(field.Name) && !Stateful.ContainsKey(field.Name))
                throw ApiException.BadRequest($"'{field.Name}' is not supported", field.Name);
        }

        var messages = new JsonArray();
        if (request.TryGetProperty("instructions", out var instructions) && instructions.ValueKind != JsonValueKind.Null)
            messages.Add(new JsonObject { ["role"] = "system", ["content"] = Text(instructions, "instructions") });
        if (!request.TryGetProperty("input", out var input))
            throw ApiException.BadRequest("'input' is required", "input");
        if (earlier is { } stored)
            ReadInput(stored, messages, "previous_response_id");
        ReadInput(input, messages, "input");
        chat["messages"] = messages;
        foreach (string same in new[] { "model", "temperature", "top_p", "parallel_tool_calls", "seed", "top_k", "min_p", "repetition_penalty", "priority", "cache_salt" })
            if (request.TryGetProperty(same, out var value))
                chat[same] = value.ToNode();
        if (request.TryGetProperty("max_output_tokens", out var max) && max.ValueKind != JsonValueKind.Null)
            chat["max_tokens"] = max.ToNode();
        if (request.TryGetProperty("tools", out var tools) && tools.ValueKind != JsonValueKind.Null)
            chat["tools"] = Tools(tools);
        if (request.TryGetProperty("tool_choice", out var choice) && choice.ValueKind != JsonValueKind.Null)
            chat["tool_choice"] = ToolChoice(choice);
        if (request.TryGetProperty("text", out var text) && text.ValueKind != JsonValueKind.Null)
            ReadText(text, chat);
        if (request.TryGetProperty("reasoning", out var reasoning) && reasoning.ValueKind == JsonValueKind.Object
            && reasoning.TryGetProperty("effort", out var effort) && effort.ValueKind != JsonValueKind.Null)
            chat["reasoning_effort"] = effort.ToNode();         // chat's: the template variable gpt-oss's template reads
        RefuseUnsupportedSettings(request);
        ResponseLogprobs.Read(request, chat);
        return chat;
    }

    /// <summary>
    /// <paramref name="input"/>, once read by <see cref="ToChat"/>, as the items a stored response keeps: a string as one
    /// user message, each item with its <c>type</c> and an <c>id</c> (the request's own, else a new one).
    /// </summary>
    public static List<JsonObject> InputItems(JsonElement input)
    {
        if (input.ValueKind == JsonValueKind.String)
            return [Item("message", new JsonObject
            {
                ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = input.GetString() }),
            })];
        return [.. input.EnumerateArray().Select(item =>
        {
            var stored = (JsonObject)item.ToNode()!;
            string type = (string?)stored["type"] ?? "message";
            stored.Remove("type");
            stored.Remove("id");
            return Item(type, stored, item.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null);
        })];
    }

    private static JsonObject Item(string type, JsonObject fields, string? id = null)
    {
        var item = new JsonObject
        {
            ["type"] = type,
            ["id"] = id ?? ResponseShapes.NewId(type switch { "function_call" => "fc", "function_call_output" => "fco", "reasoning" => "rs", _ => "msg" }),
        };
        foreach (var (name, value) in fields.ToList())
        {
            fields.Remove(name);
            item[name] = value;
        }

        return item;
    }

    private static void ReadInput(JsonElement input, JsonArray messages, string field)
    {
        if (input.ValueKind == JsonValueKind.String)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = input.GetString() });
            return;
        }

        if (input.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest("'input' must be a string or a list of items", "input");
        int i = 0;
        foreach (var item in input.EnumerateArray())
        {
            string at = $"{field}[{i++}]";
            if (item.ValueKind != JsonValueKind.Object)
                throw ApiException.BadRequest($"'{at}' must be an object", at);
            string type = item.TryGetProperty("type", out _) ? TypeOf(item, at) : "message";
            switch (type)
            {
                case "message":
                    string role = item.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()!
                        : throw ApiException.BadRequest($"'{at}.role' is required", $"{at}.role");
                    if (role is not ("user" or "assistant" or "system" or "developer"))
                        throw ApiException.BadRequest($"'{at}.role' must be user, assistant, system or developer, got '{role}'", $"{at}.role");
                    messages.Add(new JsonObject
                    {
                        ["role"] = role,
                        ["content"] = item.TryGetProperty("content", out var content) ? Text(content, $"{at}.content") : throw ApiException.BadRequest($"'{at}.content' is required", $"{at}.content"),
                    });
                    break;
                case "function_call":
                    var call = new JsonObject
                    {
                        ["id"] = Required(item, "call_id", at), ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = Required(item, "name", at), ["arguments"] = Required(item, "arguments", at) },
                    };
                    // The model's calls of one turn are one assistant message.
                    if (messages.Count > 0 && messages[^1] is JsonObject { } last && (string?)last["role"] == "assistant" && last["tool_calls"] is JsonArray calls)
                        calls.Add(call);
                    else
                        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call) });
                    break;
                case "function_call_output":
                    messages.Add(new JsonObject
                    {
                        ["role"] = "tool", ["tool_call_id"] = Required(item, "call_id", at),
                        ["content"] = item.TryGetProperty("output", out var output) ? Text(output, $"{at}.output") : throw ApiException.BadRequest($"'{at}.output' is required", $"{at}.output"),
                    });
                    break;
                case "reasoning":
                    break;                                          // the model's earlier reasoning: templates drop it from history
                default:
                    throw ApiException.BadRequest($"input items of type '{type}' are not supported (message, function_call, function_call_output, reasoning are)", $"{at}.type");
            }
        }
    }

    /// <summary>A string, or text parts (<c>input_text</c>, <c>output_text</c>, <c>text</c>) joined.</summary>
    private static string Text(JsonElement value, string at)
    {
        if (value.ValueKind == JsonValueKind.String)
            return value.GetString()!;
        if (value.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"'{at}' must be a string or a list of text parts", at);
        var text = new System.Text.StringBuilder();
        int i = 0;
        foreach (var part in value.EnumerateArray())
        {
            string where = $"{at}[{i++}]";
            string type = TypeOf(part, where);
            if (type is not ("input_text" or "output_text" or "text"))
                throw ApiException.BadRequest($"'{where}' must be a text part (input_text, output_text); '{type}' is not supported", $"{where}.type");
            text.Append(Required(part, "text", where));
        }

        return text.ToString();
    }

    /// <summary>An object's <c>type</c>, a string ("" when the value is not an object or has none).</summary>
    private static string TypeOf(JsonElement value, string at) =>
        value.ValueKind != JsonValueKind.Object || !value.TryGetProperty("type", out var type) ? ""
            : type.ValueKind == JsonValueKind.String ? type.GetString()! : throw ApiException.BadRequest($"'{at}.type' must be a string", $"{at}.type");

    private static string Required(JsonElement item, string name, string at) =>
        item.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
            : throw ApiException.BadRequest($"'{at}.{name}' must be a string", $"{at}.{name}");

    /// <summary>Responses' flat function tools (<c>{"type": "function", "name", "parameters"}</c>) as chat's nested ones.</summary>
    private static JsonArray Tools(JsonElement tools)
    {
        if (tools.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest("'tools' must be a list", "tools");
        var chat = new JsonArray();
        int i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            string at = $"tools[{i++}]";
            string type = TypeOf(tool, at);
            if (type != "function")
                throw ApiException.BadRequest($"'{at}.type' '{type}' is not supported: this server runs function tools only (the caller runs them)", $"{at}.type");
            var function = new JsonObject { ["name"] = Required(tool, "name", at) };
            foreach (string key in new[] { "description", "parameters", "strict" })
                if (tool.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null)
                    function[key] = v.ToNode();
            chat.Add(new JsonObject { ["type"] = "function", ["function"] = function });
        }

        return chat;
    }

    private static JsonNode ToolChoice(JsonElement choice)
    {
        if (choice.ValueKind == JsonValueKind.String)
            return JsonValue.Create(choice.GetString())!;
        if (choice.ValueKind == JsonValueKind.Object && TypeOf(choice, "tool_choice") == "function")
            return new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = Required(choice, "name", "tool_choice") } };
        throw ApiException.BadRequest("'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": …}", "tool_choice");
    }

    /// <summary><c>text.format</c> as chat's <c>response_format</c> (Responses keeps the schema's name and schema at the format's top level).</summary>
    private static void ReadText(JsonElement text, JsonObject chat)
    {
        if (text.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest("'text' must be an object", "text");
        if (!text.TryGetProperty("format", out var format) || format.ValueKind == JsonValueKind.Null)
            return;
        string type = TypeOf(format, "text.format");
        chat["response_format"] = type switch
        {
            "text" or "json_object" => new JsonObject { ["type"] = type },
            "json_schema" => new JsonObject
            {
                ["type"] = "json_schema",
                ["json_schema"] = new JsonObject
                {
                    ["name"] = format.TryGetProperty("name", out var n) ? n.ToNode() : null,
                    ["schema"] = format.TryGetProperty("schema", out var s) ? s.ToNode() : throw ApiException.BadRequest("'text.format.schema' is required", "text.format.schema"),
                    ["strict"] = format.TryGetProperty("strict", out var strict) ? strict.ToNode() : null,
                },
            },
            _ => throw ApiException.BadRequest($"'text.format.type' must be text, json_object or json_schema, got '{type}'", "text.format.type"),
        };
    }

    private static void RefuseUnsupportedSettings(JsonElement request)
    {
        if (request.TryGetProperty("truncation", out var truncation) && truncation.ValueKind == JsonValueKind.String && truncation.GetString() != "disabled")
            throw ApiException.BadRequest("'truncation' must be 'disabled': a conversation past the context is refused, never cut", "truncation");
        if (request.TryGetProperty("reasoning", out var reasoning) && reasoning.ValueKind != JsonValueKind.Null)
        {
            if (reasoning.ValueKind != JsonValueKind.Object)
                throw ApiException.BadRequest("'reasoning' must be an object", "reasoning");
            foreach (var other in reasoning.EnumerateObject())
                if (other.Name != "effort" && other.Value.ValueKind != JsonValueKind.Null)
                    throw ApiException.BadRequest($"'reasoning.{other.Name}' is not supported (reasoning.effort is: it reaches the chat template as reasoning_effort)",
                        $"reasoning.{other.Name}");
        }
        foreach (var (name, kinds) in new (string, JsonValueKind[])[]
        {
            ("store", [JsonValueKind.True, JsonValueKind.False]), ("metadata", [JsonValueKind.Object]), ("user", [JsonValueKind.String]),
            ("service_tier", [JsonValueKind.String]), ("safety_identifier", [JsonValueKind.String]), ("prompt_cache_key", [JsonValueKind.String]),
            ("truncation", [JsonValueKind.String]), ("stream", [JsonValueKind.True, JsonValueKind.False]),
        })
            if (request.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null && !kinds.Contains(value.ValueKind))
                throw ApiException.BadRequest($"'{name}' must be {(kinds[0] is JsonValueKind.True ? "a boolean" : kinds[0] is JsonValueKind.Object ? "an object" : "a string")}", name);
    }
}
