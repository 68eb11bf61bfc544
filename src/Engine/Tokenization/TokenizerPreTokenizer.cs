using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Serving.Engine.Tokenization;

/// <summary>
/// A tokenizer.json <c>pre_tokenizer</c>: splits one normalized piece of input into the pre-tokens BPE runs on, as the
/// Rust <c>tokenizers</c> library does, on code points. The nested records are the kinds real Llama-family checkpoints
/// use; any other kind or option is a start-up error naming it.
/// </summary>
public abstract record TokenizerPreTokenizer
{
    /// <summary>Splits every piece of <paramref name="pieces"/> in place.</summary>
    /// <param name="pieces">The pre-tokens so far.</param>
    /// <param name="atInputStart">Whether the first piece starts the whole input (Metaspace's <c>first</c> scheme).</param>
    public abstract void Apply(List<string> pieces, bool atInputStart);

    /// <summary>Whether every character of the input is in some piece (no kind drops text): then a segment's length bounds
    /// from below how many tokens it becomes.</summary>
    public virtual bool KeepsText => true;

    /// <summary>Whether pieces leave this pre-tokenizer mapped to the byte-level alphabet (the BPE model then sees bytes).</summary>
    public virtual bool MapsBytes => false;

    public static TokenizerPreTokenizer? FromJson(JsonObject? node, string source)
    {
        if (node is null)
            return null;
        string type = node["type"]?.GetValue<string>() ?? "";
        return type switch
        {
            "ByteLevel" => new ByteLevel(node["add_prefix_space"]?.GetValue<bool>() ?? true, node["use_regex"]?.GetValue<bool>() ?? true),
            "Split" => new Split(TokenizerPattern.FromJson(node["pattern"], source, "pre_tokenizer Split"),
                ParseBehavior(node["behavior"]?.GetValue<string>() ?? "Isolated", source), node["invert"]?.GetValue<bool>() ?? false),
            "Metaspace" => new Metaspace((node["replacement"]?.GetValue<string>() ?? "\u2581") is { Length: 1 } r ? r[0]
                    : throw new TokenizerException($"{source}: Metaspace replacement must be one character"),
                node["prepend_scheme"]?.GetValue<string>() switch
                {
                    null => node["add_prefix_space"]?.GetValue<bool>() == false ? "never" : "always",
                    "always" or "never" or "first" => node["prepend_scheme"]!.GetValue<string>(),
                    var other => throw new TokenizerException($"{source}: Metaspace prepend_scheme '{other}' is not supported"),
                },
                node["split"]?.GetValue<bool>() ?? true),
            "Digits" => new Digits(node["individual_digits"]?.GetValue<bool>() ?? false),
            "Sequence" => new Sequence((node["pretokenizers"] as JsonArray ?? []).Select(p => FromJson(p as JsonObject, source)!).ToList()),
            _ => throw new TokenizerException($"{source}: pre_tokenizer '{type}' is not supported (ByteLevel, Split, Metaspace, Digits, Sequence)"),
        };
    }

    private static SplitBehavior ParseBehavior(string name, string source) => Enum.TryParse<SplitBehavior>(name, out var b)
        ? b : throw new TokenizerException($"{source}: Split behavior '{name}' is not supported");

    /// <summary>GPT-2's pre-tokenizer regex, which ByteLevel with <c>use_regex</c> applies.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly TokenizerPattern Gpt2 = TokenizerPattern.FromJson(new JsonObject { ["Regex"] = Gpt2Pattern }, "", "");

    /// <summary>Prefix space (unless the piece starts with one), GPT-2 split, then every byte as its alphabet character.</summary>
    public sealed record ByteLevel(bool AddPrefixSpace, bool UseRegex) : TokenizerPreTokenizer
    {
        public override bool MapsBytes => true;

        public override void Apply(List<string> pieces, bool atInputStart)
        {
            var result = new List<string>(pieces.Count);
            foreach (string piece in pieces)
            {
                string text = AddPrefixSpace && !piece.StartsWith(' ') ? " " + piece : piece;
                var parts = new List<string>();
                if (UseRegex)
                    SplitBy(text, Gpt2, SplitBehavior.Isolated, invert: false, parts);
                else
                    parts.Add(text);
                result.AddRange(parts.Select(p => ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(p))));
            }

            pieces.Clear();
            pieces.AddRange(result);
        }
    }

    public sealed record Split(TokenizerPattern Pattern, SplitBehavior Behavior, bool Invert) : TokenizerPreTokenizer
    {
        public override bool KeepsText => Behavior != SplitBehavior.Removed;

        public override void Apply(List<string> pieces, bool atInputStart) => Each(pieces, (p, into) => SplitBy(p, Pattern, Behavior, Invert, into));
    }

    /// <summary>Spaces become the replacement ('▁'), which is prepended by the scheme; with <c>split</c>, each '▁' starts a piece.</summary>
    public sealed record Metaspace(char Replacement, string PrependScheme, bool SplitOnReplacement) : TokenizerPreTokenizer
    {
        public override void Apply(List<string> pieces, bool atInputStart)
        {
            for (int i = 0; i < pieces.Count; i++)
            {
                string text = pieces[i].Replace(' ', Replacement);
                bool prepend = PrependScheme == "always" || (PrependScheme == "first" && atInputStart && i == 0);
                if (prepend && !text.StartsWith(Replacement))
                    text = Replacement + text;
                pieces[i] = text;
            }

            if (SplitOnReplacement)
            {
                var pattern = TokenizerPattern.FromJson(new JsonObject { ["String"] = Replacement.ToString() }, "", "");
                Each(pieces, (p, into) => SplitBy(p, pattern, SplitBehavior.MergedWithNext, invert: false, into));
            }
        }
    }

    /// <summary>Digits (Unicode Nd, Nl, No) split off: each alone, or in runs.</summary>
    public sealed record Digits(bool Individual) : TokenizerPreTokenizer
    {
        public override void Apply(List<string> pieces, bool atInputStart) => Each(pieces, (p, into) =>
        {
            var spans = new List<(int, int)>();
            for (int i = 0; i < p.Length; i += char.IsSurrogatePair(p, i) ? 2 : 1)
            {
                int width = char.IsSurrogatePair(p, i) ? 2 : 1;
                if (CharUnicodeInfo.GetUnicodeCategory(p, i) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber)
                    spans.Add((i, width));
            }

            Cut(p, spans, Individual ? SplitBehavior.Isolated : SplitBehavior.Contiguous, into);
        });
    }

    public sealed record Sequence(IReadOnlyList<TokenizerPreTokenizer> Steps) : TokenizerPreTokenizer
    {
        public override bool KeepsText => Steps.All(s => s.KeepsText);

        public override bool MapsBytes => Steps.Any(s => s.MapsBytes);

        public override void Apply(List<string> pieces, bool atInputStart)
        {
            foreach (var step in Steps)
                step.Apply(pieces, atInputStart);
        }
    }

    private static void Each(List<string> pieces, Action<string, List<string>> split)
    {
        var result = new List<string>(pieces.Count);
        foreach (string p in pieces)
            split(p, result);
        pieces.Clear();
        pieces.AddRange(result);
    }

    private static void SplitBy(string text, TokenizerPattern pattern, SplitBehavior behavior, bool invert, List<string> into)
    {
        var matches = new List<(int Start, int Length)>(pattern.Matches(text));
        if (invert)
        {
            var gaps = new List<(int, int)>();
            int at = 0;
            foreach (var (start, length) in matches)
            {
                if (start > at)
                    gaps.Add((at, start - at));
                at = start + length;
            }

            if (at < text.Length)
                gaps.Add((at, text.Length - at));
            matches = gaps;
        }

        Cut(text, matches, behavior, into);
    }

    /// <summary>Cuts <paramref name="text"/> at the delimiter spans as the behavior says; empty pieces are dropped.</summary>
    private static void Cut(string text, List<(int Start, int Length)> delimiters, SplitBehavior behavior, List<string> into)
    {
        if (behavior == SplitBehavior.Isolated)
        {
            // The common case (Llama-3's and Qwen's Split, GPT-2's regex): every stretch as it is, without the lists below.
            int from = 0;
            foreach (var (start, length) in delimiters)
            {
                if (start > from)
                    into.Add(text[from..start]);
                into.Add(text.Substring(start, length));
                from = start + length;
            }

            if (from < text.Length)
                into.Add(text[from..]);
            return;
        }

        // Alternating pieces: (text, isDelimiter), in order.
        var parts = new List<(string Text, bool Delimiter)>();
        int at = 0;
        foreach (var (start, length) in delimiters)
        {
            if (start > at)
                parts.Add((text[at..start], false));
            parts.Add((text.Substring(start, length), true));
            at = start + length;
        }

        if (at < text.Length)
            parts.Add((text[at..], false));
        var result = new List<string>();
        switch (behavior)
        {
            case SplitBehavior.Removed:
                result.AddRange(parts.Where(p => !p.Delimiter).Select(p => p.Text));
                break;
            case SplitBehavior.Isolated:
                result.AddRange(parts.Select(p => p.Text));
                break;
            case SplitBehavior.Contiguous:
                for (int i = 0; i < parts.Count; i++)
                {
                    if (parts[i].Delimiter && i > 0 && parts[i - 1].Delimiter)
                        result[^1] += parts[i].Text;
                    else
                        result.Add(parts[i].Text);
                }

                break;
            case SplitBehavior.MergedWithPrevious:
                // A delimiter joins the text before it; one right after another delimiter stands alone.
                for (int i = 0; i < parts.Count; i++)
                {
                    if (parts[i].Delimiter && i > 0 && !parts[i - 1].Delimiter)
                        result[^1] += parts[i].Text;
                    else
                        result.Add(parts[i].Text);
                }

                break;
            case SplitBehavior.MergedWithNext:
                string pending = "";
                foreach (var p in parts)
                {
                    if (p.Delimiter)
                    {
                        if (pending.Length > 0)
                            result.Add(pending);
                        pending = p.Text;
                    }
                    else
                    {
                        result.Add(pending + p.Text);
                        pending = "";
                    }
                }

                if (pending.Length > 0)
                    result.Add(pending);
                break;
        }

        into.AddRange(result.Where(r => r.Length > 0));
    }
}
