using Serving.Engine.Templating;

namespace Serving.Engine.Tokenization;

/// <summary>
/// The model's own chat templates (<c>chat_template.jinja</c> in the model folder, else <c>chat_template</c> in
/// tokenizer_config.json: one text, or a list of named ones), parsed once at load and rendered as transformers'
/// <c>apply_chat_template</c> renders them, choosing as it does (a requested name; else "tool_use" when the request has
/// tools and the model names one; else "default"): <c>messages</c>, <c>tools</c>, <c>documents</c>, <c>add_generation_prompt</c>,
/// <c>bos_token</c>, <c>eos_token</c> and the request's extra template arguments. A template using a construct the engine
/// does not support is refused at load, naming it; a model without a template is refused at chat time.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>Variables the server sets itself; request arguments may not replace them.</summary>
    public static readonly IReadOnlySet<string> ReservedVariables = new HashSet<string>(StringComparer.Ordinal)
        { "messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token" };

    public const string DefaultName = "default";
    public const string ToolUseName = "tool_use";

    private readonly Dictionary<string, JinjaTemplate> _templates;
    private readonly string _bos;
    private readonly string _eos;

    /// <summary>One template (or none), named "default".</summary>
    public ChatTemplate(string? source, string? bosToken, string? eosToken)
        : this(string.IsNullOrEmpty(source) ? new Dictionary<string, string>() : new Dictionary<string, string> { [DefaultName] = source }, bosToken, eosToken)
    {
    }

    /// <summary>One template given by an operator (a server's <c>--chat-template</c>), parsed now.</summary>
    /// <exception cref="ChatTemplateException">It is not one this engine renders exactly (the message names why).</exception>
    public static ChatTemplate Parse(string source, string? bosToken, string? eosToken)
    {
        try
        {
            return new ChatTemplate(source, bosToken, eosToken);
        }
        catch (TemplateException ex)
        {
            throw new ChatTemplateException(ex.Message);
        }
    }

    /// <exception cref="TemplateException">A template is not one this engine renders exactly (the message names it).</exception>
    public ChatTemplate(IReadOnlyDictionary<string, string> sources, string? bosToken, string? eosToken)
    {
        _templates = new Dictionary<string, JinjaTemplate>(StringComparer.Ordinal);
        foreach (var (name, source) in sources)
        {
            try
            {
                _templates[name] = JinjaTemplate.Parse(source);
            }
            catch (TemplateException ex)
            {
                throw new TemplateException(sources.Count > 1 ? $"template '{name}': {ex.Message}" : ex.Message);
            }
        }

        _bos = bosToken ?? "";
        _eos = eosToken ?? "";
    }

    public bool IsAvailable => _templates.Count > 0;

    public IReadOnlyCollection<string> Names => _templates.Keys;

    private JinjaTemplate Choose(string? name, object? tools)
    {
        if (name is not null)
            return _templates.TryGetValue(name, out var named) ? named
                : throw new ChatTemplateException($"this model has no chat template named '{name}' (it has: {string.Join(", ", _templates.Keys.Order(StringComparer.Ordinal))})");
        if (tools is not null && _templates.TryGetValue(ToolUseName, out var toolUse))
            return toolUse;
        return _templates.TryGetValue(DefaultName, out var fallback) ? fallback
            : _templates.Count == 1 ? _templates.Values.Single()
            : throw new ChatTemplateException($"this model has several chat templates and none named '{DefaultName}': name one in 'chat_template' ({string.Join(", ", _templates.Keys.Order(StringComparer.Ordinal))})");
    }

    /// <summary>
    /// Whether the template chosen for <paramref name="name"/> (and tools or none) loops over a message's content, so takes
    /// OpenAI's lists of content parts (vLLM's "auto" content format then passes them); false without one.
    /// </summary>
    public bool TakesContentParts(string? name, bool tools)
    {
        try
        {
            return _templates.Count > 0 && Choose(name, tools ? true : null).IteratesMessageContent;
        }
        catch (ChatTemplateException)
        {
            return false;                                   // Render names the problem
        }
    }

    /// <summary>The template file beside the tokenizer, when the checkpoint ships one (newer transformers save it apart).</summary>
    public const string FileName = "chat_template.jinja";

    /// <summary>The prompt text; special tokens appear as text, for the tokenizer to recognise.</summary>
    /// <param name="messages">Message objects as template values (<see cref="JinjaTemplate.FromJson(System.Text.Json.JsonElement)"/>).</param>
    /// <param name="tools">The request's tools, or null.</param>
    /// <param name="addGenerationPrompt">Whether to end with the cue for the assistant's reply.</param>
    /// <param name="arguments">Extra template variables (<c>chat_template_kwargs</c>: <c>enable_thinking</c> …).</param>
    /// <param name="now">What <c>strftime_now</c> reads.</param>
    /// <param name="name">A named template of the model; null chooses as transformers does.</param>
    /// <param name="documents">The request's documents for retrieval-augmented templates (Command R's), or null.</param>
    /// <exception cref="ChatTemplateException">No template, the template refused the conversation, or it failed on it.</exception>
    public string Render(IReadOnlyList<object?> messages, object? tools, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? arguments,
        DateTimeOffset now, string? name = null, object? documents = null)
    {
        if (_templates.Count == 0)
            throw new ChatTemplateException($"this model has no chat template ({FileName}, or chat_template in tokenizer_config.json); use /v1/completions");
        var template = Choose(name, tools);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (variable, value) in arguments ?? new Dictionary<string, object?>())
            variables[variable] = value;
        variables["messages"] = messages.ToList();
        variables["tools"] = tools;
        variables["documents"] = documents;
        variables["add_generation_prompt"] = addGenerationPrompt;
        variables["bos_token"] = _bos;
        variables["eos_token"] = _eos;
        try
        {
            return template.Render(variables, now);
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
