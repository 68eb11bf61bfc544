using Serving.Contracts.Generation;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Constraints;

/// <summary>
/// The token tries of one vocabulary, each built once when first needed: the plain one every format uses, and one per set
/// of special tokens a free text may hold (<see cref="FreeTextPrefix.SpecialTokens"/>: in practice one, harmony's). Thread-safe.
/// </summary>
internal sealed class VocabularyTries(HfTokenizer tokenizer, int vocabularySize)
{
    /// <summary>Tries with spelt specials kept; more distinct sets are built for each constraint and not kept.</summary>
    public const int MaxKept = 4;

    private readonly Lazy<TokenTrie> _plain = new(() => TokenTrie.Build(tokenizer, vocabularySize));
    private readonly Dictionary<string, Lazy<TokenTrie>> _spelling = [];

    /// <summary>
    /// The trie for <paramref name="freeText"/>, and the special texts it spells (a text's index here is its index in
    /// <see cref="TokenTrie.SpecialBytes"/>): those of <see cref="FreeTextPrefix.SpecialTokens"/> the tokenizer has a special
    /// token for; the others are plain text.
    /// </summary>
    public (TokenTrie Trie, IReadOnlyList<string> Spelt) For(FreeTextPrefix? freeText)
    {
        var spelt = new List<string>();
        var ids = new List<int>();
        foreach (string text in freeText?.SpecialTokens ?? [])
            if (tokenizer.TokenToId(text) is int id && tokenizer.IsSpecial(id) && !ids.Contains(id))
            {
                spelt.Add(text);
                ids.Add(id);
            }

        if (ids.Count == 0)
            return (_plain.Value, []);
        if (ids.Count > TokenTrie.MaxSpecials)
            throw new ConstraintException("$", $"a free text may hold at most {TokenTrie.MaxSpecials} special tokens");
        string key = string.Join(",", ids);
        Lazy<TokenTrie> trie;
        lock (_spelling)
        {
            if (!_spelling.TryGetValue(key, out trie!))
            {
                trie = new Lazy<TokenTrie>(() => TokenTrie.Build(tokenizer, vocabularySize, ids));
                if (_spelling.Count < MaxKept)
                    _spelling[key] = trie;
            }
        }

        return (trie.Value, spelt);
    }

    /// <summary>
    /// <paramref name="text"/>'s bytes in a trie spelling <paramref name="spelt"/>: each occurrence of a spelt special's
    /// text (the longest where two start at one place) as its spelling, the rest as UTF-8.
    /// </summary>
    public static byte[] Spell(string text, IReadOnlyList<string> spelt)
    {
        var bytes = new List<byte>();
        int plainFrom = 0;
        for (int at = 0; at < text.Length;)
        {
            int best = -1;
            for (int i = 0; i < spelt.Count; i++)
                if (text.AsSpan(at).StartsWith(spelt[i], StringComparison.Ordinal) && (best < 0 || spelt[i].Length > spelt[best].Length))
                    best = i;
            if (best < 0)
            {
                at++;
                continue;
            }

            bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(text[plainFrom..at]));
            bytes.AddRange(TokenTrie.SpecialBytes(best));
            at += spelt[best].Length;
            plainFrom = at;
        }

        bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(text[plainFrom..]));
        return [.. bytes];
    }
}
