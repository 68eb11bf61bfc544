using System.Text;

namespace Serving.Engine.Tokenization;

/// <summary>
/// Renders chat messages with the prompt format of the model's family. The family is recognised from the Jinja
/// <c>chat_template</c> in tokenizer_config.json by the markers each family's template uses; the server renders it
/// natively instead of running Jinja. A template it does not recognise is an error at chat time (never guessed).
/// </summary>
internal sealed class ChatTemplate
{
    private const string QwenDefaultSystem = "You are a helpful assistant.";
    private readonly string? _template;
    private readonly string _bos;
    private readonly string _eos;

    public ChatTemplate(string? template, string? bosToken, string? eosToken)
    {
        _template = template;
        _bos = bosToken ?? "";
        _eos = eosToken ?? "";
        Family = Detect(template);
    }

    public ChatTemplateFamily Family { get; }

    public static ChatTemplateFamily Detect(string? template) => template switch
    {
        null or "" => ChatTemplateFamily.Unknown,
        _ when template.Contains("<|im_start|>", StringComparison.Ordinal) => ChatTemplateFamily.ChatML,
        _ when template.Contains("<|start_header_id|>", StringComparison.Ordinal) => ChatTemplateFamily.Llama3,
        _ when template.Contains("[INST]", StringComparison.Ordinal) && template.Contains("<<SYS>>", StringComparison.Ordinal) => ChatTemplateFamily.Llama2,
        _ when template.Contains("[INST]", StringComparison.Ordinal) => ChatTemplateFamily.Mistral,
        _ => ChatTemplateFamily.Unknown,
    };

    /// <summary>The prompt text, ending with the cue for the assistant's reply. Special tokens appear as text.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages)
    {
        if (messages.Count == 0)
            throw new ChatTemplateException("messages must not be empty");
        foreach (var m in messages)
            if (m.Role is not ("system" or "user" or "assistant"))
                throw new ChatTemplateException($"message role '{m.Role}' is not supported (system, user, assistant)");
        return Family switch
        {
            ChatTemplateFamily.ChatML => ChatMl(messages),
            ChatTemplateFamily.Llama3 => Llama3(messages),
            ChatTemplateFamily.Llama2 => Llama2(messages),
            ChatTemplateFamily.Mistral => Mistral(messages),
            _ => throw new ChatTemplateException(_template is null
                ? "this model has no chat_template in tokenizer_config.json; use /v1/completions"
                : "this model's chat_template is not one of the supported families (ChatML, Llama-2, Llama-3, Mistral); use /v1/completions"),
        };
    }

    private string ChatMl(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        if (messages[0].Role != "system" && _template!.Contains(QwenDefaultSystem, StringComparison.Ordinal))
            sb.Append("<|im_start|>system\n").Append(QwenDefaultSystem).Append("<|im_end|>\n");
        foreach (var m in messages)
            sb.Append("<|im_start|>").Append(m.Role).Append('\n').Append(m.Content).Append("<|im_end|>\n");
        return sb.Append("<|im_start|>assistant\n").ToString();
    }

    private string Llama3(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder(_bos);
        foreach (var m in messages)
            sb.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n").Append(m.Content.Trim()).Append("<|eot_id|>");
        return sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n").ToString();
    }

    private string Llama2(IReadOnlyList<ChatMessage> messages)
    {
        var (system, turns) = SplitSystem(messages);
        var sb = new StringBuilder();
        for (int i = 0; i < turns.Count; i++)
        {
            var m = turns[i];
            if (m.Role == "user")
            {
                string content = i == 0 && system is not null ? $"<<SYS>>\n{system}\n<</SYS>>\n\n{m.Content}" : m.Content;
                sb.Append(_bos).Append("[INST] ").Append(content.Trim()).Append(" [/INST]");
            }
            else
            {
                sb.Append(' ').Append(m.Content.Trim()).Append(' ').Append(_eos);
            }
        }

        return sb.ToString();
    }

    private string Mistral(IReadOnlyList<ChatMessage> messages)
    {
        var (system, turns) = SplitSystem(messages);
        var sb = new StringBuilder(_bos);
        for (int i = 0; i < turns.Count; i++)
        {
            var m = turns[i];
            if (m.Role == "user")
                sb.Append("[INST] ").Append(i == 0 && system is not null ? system + "\n\n" + m.Content : m.Content).Append(" [/INST]");
            else
                sb.Append(m.Content).Append(_eos);
        }

        return sb.ToString();
    }

    private static (string? System, List<ChatMessage> Turns) SplitSystem(IReadOnlyList<ChatMessage> messages)
    {
        string? system = messages[0].Role == "system" ? messages[0].Content : null;
        var turns = messages.Skip(system is null ? 0 : 1).ToList();
        for (int i = 0; i < turns.Count; i++)
        {
            string expected = i % 2 == 0 ? "user" : "assistant";
            if (turns[i].Role != expected)
                throw new ChatTemplateException($"this model's chat format needs roles to alternate user/assistant (after an optional system message); message {i} is '{turns[i].Role}'");
        }

        if (turns.Count == 0 || turns[^1].Role != "user")
            throw new ChatTemplateException("the last message must be from the user");
        return (system, turns);
    }
}
