using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization;

/// <summary>
/// A tokenizer.json <c>normalizer</c>, as the Rust <c>tokenizers</c> library applies it to each piece of input between
/// added tokens. The nested records are the kinds real Llama-family checkpoints use; any other kind is a start-up error.
/// </summary>
public abstract record TokenizerNormalizer
{
    public abstract string Apply(string text);

    public static TokenizerNormalizer? FromJson(JsonObject? node, string source)
    {
        if (node is null)
            return null;
        string type = node["type"]?.GetValue<string>() ?? "";
        return type switch
        {
            "NFC" => new Unicode(NormalizationForm.FormC),
            "NFD" => new Unicode(NormalizationForm.FormD),
            "NFKC" => new Unicode(NormalizationForm.FormKC),
            "NFKD" => new Unicode(NormalizationForm.FormKD),
            "Prepend" => new Prepend(node["prepend"]?.GetValue<string>() ?? throw new TokenizerException($"{source}: normalizer Prepend has no 'prepend'")),
            "Replace" => new Replace(TokenizerPattern.FromJson(node["pattern"], source, "normalizer Replace"), node["content"]?.GetValue<string>() ?? ""),
            "Lowercase" => new Lowercase(),
            "Strip" => new Strip(node["strip_left"]?.GetValue<bool>() ?? true, node["strip_right"]?.GetValue<bool>() ?? true),
            "Sequence" => new Sequence((node["normalizers"] as JsonArray ?? []).Select(n => FromJson(n as JsonObject, source)!).ToList()),
            _ => throw new TokenizerException($"{source}: normalizer '{type}' is not supported (NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip, Sequence)"),
        };
    }

    public sealed record Unicode(NormalizationForm Form) : TokenizerNormalizer
    {
        public override string Apply(string text) => text.Normalize(Form);
    }

    /// <summary>Prepends to every non-empty piece (Llama-2's '▁').</summary>
    public sealed record Prepend(string Prefix) : TokenizerNormalizer
    {
        public override string Apply(string text) => text.Length == 0 ? text : Prefix + text;
    }

    public sealed record Replace(TokenizerPattern Pattern, string Content) : TokenizerNormalizer
    {
        public override string Apply(string text) => Pattern.Replace(text, Content);
    }

    public sealed record Lowercase : TokenizerNormalizer
    {
        public override string Apply(string text) => text.ToLowerInvariant();
    }

    public sealed record Strip(bool Left, bool Right) : TokenizerNormalizer
    {
        public override string Apply(string text) => Left && Right ? text.Trim() : Left ? text.TrimStart() : Right ? text.TrimEnd() : text;
    }

    public sealed record Sequence(IReadOnlyList<TokenizerNormalizer> Steps) : TokenizerNormalizer
    {
        public override string Apply(string text) => Steps.Aggregate(text, (t, step) => step.Apply(t));
    }
}
