using System.Text;
using System.Text.Json;
using Serving.Runtime.Hosting;
using Serving.Server.Api;
using Serving.Server.Api.OpenAi.Tools;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// A chat request's prompt: its <c>messages</c>, <c>tools</c> (unless <c>tool_choice</c> is <c>none</c>), <c>documents</c>, <c>add_generation_prompt</c>
/// or <c>continue_final_message</c>, <c>chat_template_kwargs</c> and <c>reasoning_effort</c>
/// rendered by the model's chat template (for <c>/v1/chat/completions</c> and <c>/tokenize</c> alike). Errors are 400s
/// naming the field.
/// </summary>
internal static class ChatPromptReader
{
    /// <param name="f">The request.</param>
    /// <param name="model">The model whose template renders it.</param>
    /// <param name="now">What <c>strftime_now</c> reads.</param>
    /// <param name="tools">The request's tools and <c>tool_choice</c> (<see cref="ToolChoice.Read"/>).</param>
    public static string Render(JsonFields f, ServedModel model, DateTimeOffset now, ToolChoice tools)
    {
        var toolList = tools.ShowsTools && f.Get("tools") is { } list ? ServedModel.TemplateValue(list) : null;
        var messages = ReadMessages(f, model.ChatTakesContentParts(f.String("chat_template"), toolList is not null));
        bool continueFinal = f.Bool("continue_final_message") ?? false;
        bool? generationPrompt = f.Bool("add_generation_prompt");
        if (continueFinal && generationPrompt == true)
            throw JsonFields.Bad("continue_final_message", "cannot be set together with add_generation_prompt");
        string rendered;
        try
        {
            // 'chat_template' names one of the model's own templates; template text from a request is not run.
            rendered = model.RenderChat(messages, toolList, !continueFinal && (generationPrompt ?? true), TemplateArguments(f),
                now, f.String("chat_template"), Documents(f));
        }
        catch (PromptTextException ex)
        {
            throw ApiException.BadRequest(ex.Message, "messages");
        }

        return continueFinal ? EndAtFinalMessage(rendered, FinalText(f)) : rendered;
    }

    /// <summary>
    /// vLLM's <c>continue_final_message</c>, as transformers' <c>apply_chat_template</c> does it: the rendered chat cut
    /// right after the last occurrence of the final message's text, so the model continues that message instead of
    /// closing it (its trailing whitespace kept only where the template kept it).
    /// </summary>
    private static string EndAtFinalMessage(string rendered, string final)
    {
        string stripped = final.Trim();
        if (!rendered.Contains(stripped, StringComparison.Ordinal))
            throw JsonFields.Bad("continue_final_message", "the final message does not appear in the chat the template rendered");
        int at = stripped.Length == 0 ? rendered.Length : rendered.LastIndexOf(stripped, StringComparison.Ordinal);     // Python's rindex("") is the end
        int leadLength = final.TrimStart().Length;
        bool kept = rendered[at..Math.Min(rendered.Length, at + leadLength)] == final;     // transformers' test, as written
        return rendered[..(at + (kept ? leadLength : stripped.Length))];
    }

    /// <summary>
    /// The messages as the template sees them: every field of each message (tool calls, names, ids) as sent, the content
    /// as vLLM passes it — its text parts joined by newlines into a string, or with <paramref name="asParts"/> (a template
    /// that loops over content) a list of <c>{"type": "text", "text"}</c> parts, a tool's result a string either way.
    /// </summary>
    private static List<object?> ReadMessages(JsonFields f, bool asParts)
    {
        if (f.Get("messages") is not { ValueKind: JsonValueKind.Array } list || list.GetArrayLength() == 0)
            throw JsonFields.Bad("messages", "must be a non-empty list");
        var messages = new List<object?>();
        foreach (var m in list.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object)
                throw JsonFields.Bad("messages", "entries must be objects with 'role' and 'content'");
            var mf = new JsonFields(m);
            string role = mf.String("role") ?? throw JsonFields.Bad("messages", "entries need a 'role'");
            if (!Roles.Contains(role))
                throw JsonFields.Bad("messages", $"role '{role}' is not one of {string.Join(", ", Roles)}");
            var message = (Dictionary<string, object?>)ServedModel.TemplateValue(m)!;
            var texts = TextParts(mf.Get("content"));
            message["content"] = asParts && role != "tool"
                ? texts.Select(t => (object?)new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = "text", ["text"] = t }).ToList()
                : string.Join('\n', texts);
            if (role == "assistant")
            {
                ParseCallArguments(message, messages.Count);
                ReasoningAsThinking(message);
            }

            messages.Add(message);
        }

        return messages;
    }

    /// <summary>
    /// An assistant message's <c>tool_calls</c> carry their arguments as JSON text (OpenAI's format); templates expect
    /// the object (transformers' convention: Qwen's and Llama's templates write it with <c>tojson</c>), so vLLM parses
    /// them and so does this. Arguments that are not JSON are a 400 naming them.
    /// </summary>
    private static void ParseCallArguments(Dictionary<string, object?> message, int index)
    {
        if (!message.TryGetValue("tool_calls", out var calls) || calls is not List<object?> list)
            return;
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not Dictionary<string, object?> call || !call.TryGetValue("function", out var f) || f is not Dictionary<string, object?> function
                || !function.TryGetValue("arguments", out var arguments) || arguments is not string text)
                continue;
            try
            {
                using var doc = JsonDocument.Parse(text);
                function["arguments"] = ServedModel.TemplateValue(doc.RootElement);
            }
            catch (JsonException)
            {
                throw JsonFields.Bad($"messages[{index}].tool_calls[{i}].function.arguments", "must be JSON text");
            }
        }
    }

    /// <summary>
    /// An assistant message's reasoning, sent back as vLLM returned it (<c>reasoning</c>, or <c>reasoning_content</c>), is
    /// also its <c>thinking</c>: the field gpt-oss's template reads to keep the analysis that led to a tool call in the
    /// conversation until the final answer (what its harmony format asks). A message that has <c>thinking</c> keeps it;
    /// templates that read <c>reasoning_content</c> (Qwen3's) still find it.
    /// </summary>
    private static void ReasoningAsThinking(Dictionary<string, object?> message)
    {
        if (!message.ContainsKey("thinking")
            && (message.GetValueOrDefault("reasoning") ?? message.GetValueOrDefault("reasoning_content")) is string { Length: > 0 } reasoning)
            message["thinking"] = reasoning;
    }

    /// <summary>
    /// vLLM's chat <c>echo</c>: with it, the final message's text when that message is the assistant's (the answer then
    /// starts with it — what continuing a message with <c>continue_final_message</c> wants); else, and without it, empty.
    /// </summary>
    public static string Echoed(JsonFields f)
    {
        if (f.Bool("echo") != true || f.Get("messages") is not { ValueKind: JsonValueKind.Array } list || list.GetArrayLength() == 0)
            return "";
        var last = new JsonFields(list[list.GetArrayLength() - 1]);
        return last.String("role") == "assistant" ? Text(last.Get("content")) : "";
    }

    /// <summary>OpenAI's roles, and Llama 3.1's <c>ipython</c> for tool results; what a template does with each is its own affair.</summary>
    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool", "function", "ipython"];

    /// <summary>
    /// vLLM's <c>documents</c>: objects (a title, a text …) the template shows for retrieval-augmented answers, as
    /// transformers passes them (Command R's templates read them); a template that does not read them ignores them.
    /// </summary>
    private static object? Documents(JsonFields f) => f.Get("documents") switch
    {
        null => null,
        { ValueKind: JsonValueKind.Array } list when list.EnumerateArray().All(d => d.ValueKind == JsonValueKind.Object) => ServedModel.TemplateValue(list),
        _ => throw JsonFields.Bad("documents", "must be a list of objects such as {\"title\": \"...\", \"text\": \"...\"}"),
    };

    /// <summary>
    /// <c>chat_template_kwargs</c> (vLLM's name): extra template variables such as <c>enable_thinking</c>; OpenAI's
    /// <c>reasoning_effort</c> joins them as the template variable of that name (gpt-oss's template reads it) unless the
    /// kwargs set it.
    /// </summary>
    private static Dictionary<string, object?>? TemplateArguments(JsonFields f)
    {
        string? effort = f.String("reasoning_effort");
        if (effort is not null && effort is not ("minimal" or "low" or "medium" or "high"))
            throw JsonFields.Bad("reasoning_effort", "must be one of minimal, low, medium, high");
        Dictionary<string, object?>? arguments = null;
        if (f.Get("chat_template_kwargs") is { } kwargs && kwargs.ValueKind != JsonValueKind.Null)
        {
            if (kwargs.ValueKind != JsonValueKind.Object)
                throw JsonFields.Bad("chat_template_kwargs", "must be an object of template variables");
            arguments = (Dictionary<string, object?>)ServedModel.TemplateValue(kwargs)!;
            if (arguments.Keys.FirstOrDefault(ServedModel.ReservedChatVariables.Contains) is string reserved)
                throw JsonFields.Bad("chat_template_kwargs", $"'{reserved}' is set by the server (use the request's own field)");
        }

        if (effort is not null)
            (arguments ??= new Dictionary<string, object?>(StringComparer.Ordinal)).TryAdd("reasoning_effort", effort);
        return arguments;
    }

    /// <summary>The final message's text (of messages <see cref="ReadMessages"/> has checked).</summary>
    private static string FinalText(JsonFields f)
    {
        var list = f.Get("messages")!.Value;
        return Text(new JsonFields(list[list.GetArrayLength() - 1]).Get("content"));
    }

    /// <summary>A message's content as one string: its text parts joined by newlines, as vLLM flattens them.</summary>
    private static string Text(JsonElement? content) => string.Join('\n', TextParts(content));

    /// <summary>
    /// A message's texts: none for no content (or null), a string as given; of a list of parts, each text part's (<c>text</c>,
    /// and the Responses API's <c>input_text</c>/<c>output_text</c>, a <c>refusal</c>), a part without text skipped.
    /// </summary>
    private static List<string> TextParts(JsonElement? content)
    {
        switch (content)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return [];
            case { ValueKind: JsonValueKind.String } s:
                return [s.GetString()!];
            case { ValueKind: JsonValueKind.Array } parts:
                var texts = new List<string>();
                foreach (var part in parts.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object)
                        throw JsonFields.Bad("messages", "content parts must be objects like {\"type\": \"text\", \"text\": \"...\"}");
                    var pf = new JsonFields(part);
                    string? type = pf.String("type");
                    if (type is not ("text" or "input_text" or "output_text" or "refusal"))
                        throw JsonFields.Bad("messages", $"only text content parts are supported (text, input_text, output_text, refusal), got '{type}'");
                    if ((type == "refusal" ? pf.String("refusal") : pf.String("text")) is { } text)
                        texts.Add(text);
                }

                return texts;
            default:
                throw JsonFields.Bad("messages", "content must be a string or a list of text parts");
        }
    }
}
