using System.Text;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> BPE tokenizer, byte-level or SentencePiece-style with byte fallback.
/// Microsoft.ML.Tokenizers 2.0 is not used for this: it reads vocab/merges files or SentencePiece protobufs, not
/// tokenizer.json, and its BPE cannot take the model's own pre-tokenizer regex or the added-token table, so
/// tokenizer.json files would be served with different ids than the model was trained on. (The tests use its
/// Tiktoken GPT-2 tokenizer as an independent oracle.)
/// </summary>
internal sealed class HfTokenizer
{
    private const char Metaspace = '\u2581';
    private const int MaxCachedWordChars = 256;
    private readonly BpeModel _bpe;
    private readonly string[] _idToToken;
    private readonly byte[]?[] _idToBytes;
    private readonly CodePointRegex? _preTokenizer;
    private readonly bool _ignoreMerges;
    private readonly Regex? _addedTokenPattern;
    private readonly Dictionary<string, AddedToken> _addedByContent;
    private readonly Dictionary<string, int[]> _wordCache = new(StringComparer.Ordinal);
    private readonly Lock _cacheLock = new();
    private readonly NormalizationForm? _normalization;
    private readonly bool _spPrependSpace;
    private readonly bool _spPrependEverySegment;

    /// <remarks>
    /// <c>ignoreMerges</c> is BPE's <c>ignore_merges</c>: a pre-token that is itself in the vocabulary is one token, even
    /// where merges cannot reach it (Llama-3 has 588 such tokens).
    /// </remarks>
    internal HfTokenizer(TokenizerKind kind, BpeModel bpe, IReadOnlyList<AddedToken> addedTokens, CodePointRegex? preTokenizer,
        NormalizationForm? normalization, bool spPrependSpace, bool spPrependEverySegment, int? unkId, TokenizerSpecialTokens specials, bool ignoreMerges = false)
    {
        _ignoreMerges = ignoreMerges;
        Kind = kind;
        _bpe = bpe;
        _preTokenizer = preTokenizer;
        _normalization = normalization;
        _spPrependSpace = spPrependSpace;
        _spPrependEverySegment = spPrependEverySegment;
        UnknownTokenId = unkId;
        Specials = specials;
        AddedTokens = addedTokens;
        _addedByContent = addedTokens.GroupBy(t => t.Content).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        if (addedTokens.Count > 0)
        {
            var alternatives = addedTokens.Select(t => t.Content).Where(c => c.Length > 0).Distinct()
                .OrderByDescending(c => c.Length).Select(Regex.Escape);
            _addedTokenPattern = new Regex(string.Join("|", alternatives), RegexOptions.CultureInvariant);
        }

        int size = Math.Max(bpe.Vocab.Values.DefaultIfEmpty(-1).Max(), addedTokens.Select(t => t.Id).DefaultIfEmpty(-1).Max()) + 1;
        _idToToken = new string[size];
        foreach (var (token, id) in bpe.Vocab)
            _idToToken[id] = token;
        foreach (var t in addedTokens)
            _idToToken[t.Id] = t.Content;
        _idToBytes = new byte[size][];
        for (int id = 0; id < size; id++)
            _idToBytes[id] = _idToToken[id] is null ? null : ComputeTokenBytes(id);
    }

    public TokenizerKind Kind { get; }
    public int VocabSize => _idToToken.Length;
    public int? UnknownTokenId { get; }
    public TokenizerSpecialTokens Specials { get; }
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    public static HfTokenizer Load(string modelDir) => HfTokenizerLoader.Load(modelDir);

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out var added) ? added.Id : _bpe.Vocab.TryGetValue(token, out int id) ? id : null;

    public bool IsSpecial(int id) => _addedByContent.TryGetValue(IdToToken(id) ?? "", out var t) && t.Special && t.Id == id;

    /// <summary>Encodes text; added tokens (including special ones) in the text are recognised verbatim.</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        var ids = new List<int>();
        if (addSpecialTokens && Specials.AddBos && Specials.BosId is int bos)
            ids.Add(bos);
        int start = 0;
        bool atStart = true;
        if (_addedTokenPattern is not null)
        {
            foreach (Match m in _addedTokenPattern.Matches(text))
            {
                if (m.Index > start)
                    EncodeSegment(text[start..m.Index], ids, atStart);
                ids.Add(_addedByContent[m.Value].Id);
                start = m.Index + m.Length;
                atStart = false;
            }
        }

        if (start < text.Length)
            EncodeSegment(text[start..], ids, atStart);
        if (addSpecialTokens && Specials.AddEos && Specials.EosId is int eos)
            ids.Add(eos);
        return ids.ToArray();
    }

    /// <summary>The bytes a token contributes to decoded text; empty for special tokens (they are not shown), null for unknown ids.</summary>
    public byte[]? TokenBytes(int id) => (uint)id < (uint)_idToBytes.Length ? _idToBytes[id] : null;

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        var bytes = new List<byte>();
        bool first = true;
        foreach (int id in ids)
        {
            if (!skipSpecialTokens && IsSpecial(id))
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(_idToToken[id]));
                continue;
            }

            var b = TokenBytes(id);
            if (b is null)
                continue;
            if (first && Kind == TokenizerKind.SentencePieceBpe && _spPrependSpace && b.Length > 0 && b[0] == (byte)' ')
                b = b[1..];
            if (b.Length > 0)
                first = false;
            bytes.AddRange(b);
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private void EncodeSegment(string text, List<int> ids, bool atStart)
    {
        if (_normalization is NormalizationForm form)
            text = text.Normalize(form);
        if (Kind == TokenizerKind.SentencePieceBpe)
        {
            string normalized = text.Replace(' ', Metaspace);
            if (_spPrependSpace && (atStart || _spPrependEverySegment))
                normalized = Metaspace + normalized;
            ids.AddRange(EncodeWord(normalized));
            return;
        }

        if (_preTokenizer is null)
        {
            ids.AddRange(EncodeWord(ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(text))));
            return;
        }

        foreach (var (start, length) in _preTokenizer.Matches(text))
            ids.AddRange(EncodeWord(ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(text.Substring(start, length)))));
    }

    private int[] EncodeWord(string word)
    {
        lock (_cacheLock)
        {
            if (_wordCache.TryGetValue(word, out var cached))
                return cached;
        }

        if (_ignoreMerges && _bpe.Vocab.TryGetValue(word, out int whole))
            return [whole];
        var symbols = new List<int>(word.Length);
        for (int i = 0; i < word.Length; i++)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length ? 2 : 1;
            string piece = word.Substring(i, len);
            i += len - 1;
            if (_bpe.Vocab.TryGetValue(piece, out int id))
            {
                symbols.Add(id);
                continue;
            }

            AddUnknown(piece, symbols);
        }

        var result = _bpe.Merge(symbols);
        // Only short pieces repeat; caching a whole SentencePiece segment (a 32k-character prompt is one) would let
        // distinct long prompts fill the cache with megabytes each.
        if (word.Length > MaxCachedWordChars)
            return result;
        lock (_cacheLock)
        {
            if (_wordCache.Count > 100_000)
                _wordCache.Clear();
            _wordCache[word] = result;
        }

        return result;
    }

    private void AddUnknown(string piece, List<int> symbols)
    {
        if (Kind == TokenizerKind.SentencePieceBpe)
        {
            bool allBytes = true;
            var fallback = new List<int>();
            foreach (byte b in Encoding.UTF8.GetBytes(piece))
            {
                if (_bpe.Vocab.TryGetValue($"<0x{b:X2}>", out int byteId))
                    fallback.Add(byteId);
                else
                    allBytes = false;
            }

            if (allBytes)
            {
                symbols.AddRange(fallback);
                return;
            }
        }

        if (UnknownTokenId is int unk)
        {
            if (symbols.Count == 0 || symbols[^1] != unk)
                symbols.Add(unk);
            return;
        }

        throw new TokenizerException($"text contains '{piece}', which the vocabulary cannot represent and no unk_token is defined");
    }

    private byte[]? ComputeTokenBytes(int id)
    {
        string token = _idToToken[id];
        if (_addedByContent.TryGetValue(token, out var added) && added.Id == id)
            return added.Special ? [] : Encoding.UTF8.GetBytes(token);
        if (Kind == TokenizerKind.ByteLevelBpe)
            return ByteLevelAlphabet.Decode(token) ?? Encoding.UTF8.GetBytes(token);
        if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte raw))
            return [raw];
        return Encoding.UTF8.GetBytes(token.Replace(Metaspace, ' '));
    }
}
