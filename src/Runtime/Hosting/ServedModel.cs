using Serving.Contracts.Configuration;
using Serving.Engine.Model;
using Serving.Engine.Templating;
using Serving.Engine.Tokenization;

namespace Serving.Runtime.Hosting;

/// <summary>
/// What the front doors read of the served model: its tokenizer, its chat template, its limits and its generation
/// defaults. The weights stay behind the runtime; tokenizer and template errors arrive as <see cref="PromptTextException"/>.
/// </summary>
public sealed class ServedModel
{
    private readonly LoadedModel _model;
    private readonly ChatTemplate _chatTemplate;
    private readonly string _contentFormat;

    /// <summary>
    /// Whether messages' content reaches the template named <paramref name="templateName"/> (with tools or without) as
    /// lists of content parts rather than strings (<see cref="ModelOptions.ChatTemplateContentFormat"/>).
    /// </summary>
    public bool ChatTakesContentParts(string? templateName, bool tools) =>
        _contentFormat == "openai" || _contentFormat == "auto" && _chatTemplate.TakesContentParts(templateName, tools);

    /// <param name="model">The loaded model.</param>
    /// <param name="chatTemplate">The template served instead of the checkpoint's (<c>--chat-template</c>); null: the checkpoint's.</param>
    /// <param name="generationDefaults">Requests' sampling defaults (<see cref="GenerationConfigOption"/>); null: the checkpoint's.</param>
    /// <param name="contentFormat"><see cref="ModelOptions.ChatTemplateContentFormat"/>.</param>
    internal ServedModel(LoadedModel model, ChatTemplate? chatTemplate = null, GenerationDefaults? generationDefaults = null, string contentFormat = "auto")
    {
        _model = model;
        _contentFormat = contentFormat;
        _chatTemplate = chatTemplate ?? model.ChatTemplate;
        GenerationDefaults = generationDefaults ?? model.GenerationDefaults;
    }

    /// <summary>The checkpoint's folder.</summary>
    public string Directory => _model.Directory;

    /// <summary>Rows of the embedding table: every valid token id is in [0, VocabularySize).</summary>
    public int VocabularySize => _model.Config.VocabSize;

    /// <summary>Width of the model's hidden states: the length of a prompt's embedding.</summary>
    public int HiddenSize => _model.Config.HiddenSize;

    /// <summary>Whether the checkpoint is an embedding model (<see cref="LoadedModel.EmbeddingOnly"/>): generation is refused.</summary>
    public bool EmbeddingOnly => _model.EmbeddingOnly;

    /// <summary>The folder's declared pooling mode (sentence-transformers' <c>pooling_mode_*</c>), or null: none declared.</summary>
    public string? PoolingMode => _model.EmbeddingModules.PoolingMode;

    /// <summary>How the folder pools, when it declares a mode this server serves; else null.</summary>
    public Contracts.Generation.PromptPooling? Pooling => _model.EmbeddingModules.Pooling;

    /// <summary>The length of an embedding: the last Dense module's outputs (sentence-transformers), else <see cref="HiddenSize"/>.</summary>
    public int EmbeddingSize => _model.EmbeddingModules.Dense is { Count: > 0 } dense ? dense[^1].OutFeatures : HiddenSize;

    /// <summary>A pooled state <c>[hidden]</c> through the folder's Dense modules: the embedding, <c>[<see cref="EmbeddingSize"/>]</c>.</summary>
    public float[] FinishEmbedding(float[] pooled) => _model.EmbeddingModules.Apply(pooled);

    /// <summary>config.json's architecture.</summary>
    public string Architecture => _model.Config.Architecture;

    /// <summary>Longest sequence the model's positions (and the configured context) allow.</summary>
    public int MaxPositions => _model.Model.MaxPositions;

    /// <summary>The tokens that end a sequence (generation_config.json's, else config.json's end-of-sequence ids).</summary>
    public IReadOnlyList<int> EndOfSequenceTokenIds => _model.EosTokenIds;

    /// <summary>Requests' sampling defaults: the checkpoint's generation_config.json, or as <c>--generation-config</c> and its overrides say.</summary>
    public GenerationDefaults GenerationDefaults { get; }

    /// <summary>Template variables the server sets itself, which <c>chat_template_kwargs</c> may not override.</summary>
    public static IReadOnlySet<string> ReservedChatVariables => ChatTemplate.ReservedVariables;

    /// <summary>The id of the vocabulary entry <paramref name="token"/> (as tokenizer.json spells it), or null.</summary>
    public int? TokenId(string token) => _model.Tokenizer.TokenToId(token) is int id && id < VocabularySize ? id : null;

    /// <summary>
    /// The logits of <paramref name="tokens"/> for a final hidden state (an embedding request's <c>[hidden]</c>, the lm_head's
    /// input): each its lm_head row's dot product with it (double sums over the served rows: the int8 head's dequantized
    /// ones), then as the model's last step has them (Granite's scaling, Gemma 2's soft cap). What a classifier made of
    /// token logits (a yes/no reranker) scores with.
    /// </summary>
    public double[] Logits(IReadOnlyList<float> hidden, IReadOnlyList<int> tokens)
    {
        if (hidden.Count != HiddenSize)
            throw new ArgumentException($"a hidden state of {hidden.Count} values; the model's are {HiddenSize} wide");
        var c = _model.Config;
        var logits = new double[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            var row = _headRows.GetOrAdd(tokens[i], HeadRow);
            double z = 0;
            for (int j = 0; j < row.Length; j++)
                z += (double)row[j] * hidden[j];
            z /= c.LogitsScaling;
            logits[i] = c.FinalLogitSoftcap is double cap ? cap * Math.Tanh(z / cap) : z;
        }

        return logits;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, float[]> _headRows = new();

    private float[] HeadRow(int token)
    {
        if ((uint)token >= (uint)VocabularySize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"outside the vocabulary [0, {VocabularySize})");
        using var row = _model.Model.Weights.LmHead.RowSlice(token, 1);
        using var values = row.to(TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.CPU);
        return values.data<float>().ToArray();
    }

    /// <summary><paramref name="text"/> as token ids, as the checkpoint's tokenizer.json encodes it.</summary>
    /// <exception cref="PromptTextException">The text cannot be encoded (the message says why).</exception>
    public int[] Encode(string text, bool addSpecialTokens)
    {
        try
        {
            return _model.Tokenizer.Encode(text, addSpecialTokens);
        }
        catch (TokenizerException ex)
        {
            throw new PromptTextException(ex.Message, ex);
        }
    }

    /// <summary>
    /// <see cref="Encode"/>, or null as soon as the text certainly becomes more than <paramref name="maxTokens"/> tokens (the
    /// tokenizer stops there).
    /// </summary>
    /// <exception cref="PromptTextException">The text cannot be encoded (the message says why).</exception>
    public int[]? EncodeWithin(string text, bool addSpecialTokens, int maxTokens)
    {
        try
        {
            return _model.Tokenizer.EncodeWithin(text, addSpecialTokens, maxTokens);
        }
        catch (TokenizerException ex)
        {
            throw new PromptTextException(ex.Message, ex);
        }
    }

    /// <summary>The last tokens of a prompt that fit in <paramref name="keep"/> (<see cref="HfTokenizer.EncodeKeepingLast"/>); null past <paramref name="maxTokens"/>.</summary>
    /// <exception cref="PromptTextException">The tokenizer refused the text.</exception>
    public int[]? EncodeKeepingLast(string text, bool addSpecialTokens, int keep, int maxTokens, out int textTokens)
    {
        try
        {
            return _model.Tokenizer.EncodeKeepingLast(text, addSpecialTokens, keep, maxTokens, out textTokens);
        }
        catch (TokenizerException ex)
        {
            throw new PromptTextException(ex.Message, ex);
        }
    }

    /// <summary>The text of <paramref name="ids"/> as transformers' <c>decode</c> gives it (ids outside the vocabulary are skipped).</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens) => _model.Tokenizer.Decode(ids, skipSpecialTokens);

    /// <summary>One token's text as a logprobs entry shows it (<see cref="HfTokenizer.TokenText"/>).</summary>
    public string TokenText(int id) => _model.Tokenizer.TokenText(id);

    /// <summary>The vocabulary's string for <paramref name="id"/>; null outside the vocabulary.</summary>
    public string? TokenString(int id) => _model.Tokenizer.IdToToken(id);

    /// <summary>The raw bytes <paramref name="id"/> stands for; null outside the vocabulary.</summary>
    public byte[]? TokenBytes(int id) => _model.Tokenizer.TokenBytes(id);

    /// <summary>A conversation rendered by the model's chat template, as transformers' <c>apply_chat_template</c> does.</summary>
    /// <param name="messages">Messages as template values (see <see cref="TemplateValue"/>).</param>
    /// <param name="tools">Tool definitions as template values, or null.</param>
    /// <param name="addGenerationPrompt">Whether to open the assistant's turn.</param>
    /// <param name="arguments">Extra template variables; none of <see cref="ReservedChatVariables"/>.</param>
    /// <param name="now">What <c>strftime_now</c> reads.</param>
    /// <param name="templateName">One of the model's named templates; null chooses as transformers does.</param>
    /// <param name="documents">Documents for retrieval-augmented templates as template values, or null.</param>
    /// <exception cref="PromptTextException">No template, or the template refused or failed on the conversation.</exception>
    public string RenderChat(IReadOnlyList<object?> messages, object? tools, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? arguments,
        DateTimeOffset now, string? templateName, object? documents = null)
    {
        try
        {
            return _chatTemplate.Render(messages, tools, addGenerationPrompt, arguments, now, templateName, documents);
        }
        catch (ChatTemplateException ex)
        {
            throw new PromptTextException(ex.Message, ex);
        }
    }

    /// <summary>
    /// Compiles <paramref name="constraint"/> for this model's vocabulary (or finds it compiled), so a bad one is refused
    /// before the request queues; a cold one waits for a turn among the builds the compiler bounds, without a thread. Throws <see cref="RequestFailedException"/> (<see cref="RequestFailure.Invalid"/>) whose
    /// <see cref="RequestFailedException.Param"/> is where in the constraint the problem is (<c>$.properties.dose.not</c>).
    /// </summary>
    public async Task CompileAsync(Serving.Contracts.Generation.OutputConstraint constraint, string tenant, string? cacheSalt, CancellationToken ct)
    {
        try
        {
            await _model.Constraints.CompileAsync(constraint, ConstraintScope(tenant, cacheSalt), ct);
        }
        catch (Serving.Engine.Constraints.ConstraintException ex)
        {
            throw new RequestFailedException(RequestFailure.Invalid, ex.Problem, ex.Path);
        }
    }

    /// <summary>
    /// Whose compiled constraints a request shares: its tenant's, within its <c>cache_salt</c> (as prefix-cache blocks are),
    /// never another tenant's (<see cref="Serving.Engine.Constraints.TokenConstraintCompiler"/>).
    /// </summary>
    internal static string ConstraintScope(string tenant, string? cacheSalt) => cacheSalt is null ? tenant : tenant + "\u001f" + cacheSalt;

    /// <summary>
    /// A request's JSON as the template sees it: objects as ordinal dictionaries (a key given twice takes its last value,
    /// as Python's json reads it), arrays as lists, numbers as long or double.
    /// </summary>
    public static object? TemplateValue(System.Text.Json.JsonElement element) => JinjaTemplate.FromJson(element);
}
