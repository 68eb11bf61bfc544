using Serving.Engine.Templating;

namespace Serving.Engine.Tokenization;

/// <summary>
/// The model's own chat template (<c>chat_template.jinja</c> in the model folder, else <c>chat_template</c> in
/// tokenizer_config.json, the one named "default" when it is a list), parsed once at load and rendered as transformers'
/// <c>apply_chat_template</c> renders it: <c>messages</c>, <c>tools</c>, <c>documents</c>, <c>add_generation_prompt</c>,
/// <c>bos_token</c>, <c>eos_token</c> and the request's extra template arguments. A template using a construct the engine
/// does not support is refused at load, naming it; a model without a template is refused at chat time.
/// </summary>
internal sealed class ChatTemplate
{
    /// <summary>Variables the server sets itself; request arguments may not replace them.</summary>
    public static readonly IReadOnlySet<string> ReservedVariables = new HashSet<string>(StringComparer.Ordinal)
        { "messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token" };

    private readonly JinjaTemplate? _template;
    private readonly string _bos;
    private readonly string _eos;

    /// <exception cref="TemplateException"><paramref name="source"/> is not a template this engine renders exactly.</exception>
    public ChatTemplate(string? source, string? bosToken, string? eosToken)
    {
        _template = string.IsNullOrEmpty(source) ? null : JinjaTemplate.Parse(source);
        _bos = bosToken ?? "";
        _eos = eosToken ?? "";
    }

    public bool IsAvailable => _template is not null;

    /// <summary>The template file beside the tokenizer, when the checkpoint ships one (newer transformers save it apart).</summary>
    public const string FileName = "chat_template.jinja";

    /// <summary>The prompt text; special tokens appear as text, for the tokenizer to recognise.</summary>
    /// <param name="messages">Message objects as template values (<see cref="JinjaTemplate.FromJson"/>).</param>
    /// <param name="tools">The request's tools, or null.</param>
    /// <param name="addGenerationPrompt">Whether to end with the cue for the assistant's reply.</param>
    /// <param name="arguments">Extra template variables (<c>chat_template_kwargs</c>: <c>enable_thinking</c> …).</param>
    /// <param name="now">What <c>strftime_now</c> reads.</param>
    /// <exception cref="ChatTemplateException">No template, the template refused the conversation, or it failed on it.</exception>
    public string Render(IReadOnlyList<object?> messages, object? tools, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? arguments,
        DateTimeOffset now)
    {
        if (_template is null)
            throw new ChatTemplateException($"this model has no chat template ({FileName}, or chat_template in tokenizer_config.json); use /v1/completions");
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in arguments ?? new Dictionary<string, object?>())
            variables[name] = value;
        variables["messages"] = messages.ToList();
        variables["tools"] = tools;
        variables["documents"] = null;
        variables["add_generation_prompt"] = addGenerationPrompt;
        variables["bos_token"] = _bos;
        variables["eos_token"] = _eos;
        try
        {
            return _template.Render(variables, now);
        }
        catch (TemplateRaisedException ex)
        {
            throw new ChatTemplateException(ex.Message);
        }
        catch (TemplateException ex)
        {
            throw new ChatTemplateException($"the model's chat template failed on these messages: {ex.Message}");
        }
    }
}
