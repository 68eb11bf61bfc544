using System.Text;

namespace Serving.Engine.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> BPE tokenizer run as the Rust <c>tokenizers</c> library runs it: added tokens
/// are found first (<see cref="AddedTokenMatcher"/>); each piece between them goes through the normalizer
/// (<see cref="TokenizerNormalizer"/>), the pre-tokenizer (<see cref="TokenizerPreTokenizer"/>, on code points), and BPE
/// (<see cref="BpeModel"/> with <see cref="BpeOptions"/>); the post-processor's special tokens go around the result.
/// Microsoft.ML.Tokenizers is not used: it reads vocab/merges files or SentencePiece protobufs, not tokenizer.json, and
/// cannot take a checkpoint's own pipeline (the tests use its Tiktoken GPT-2 tokenizer as one independent oracle).
/// </summary>
public sealed class HfTokenizer
{
    private const char Metaspace = '\u2581';
    private const int MaxCachedWordChars = 256;
    private readonly BpeModel _bpe;
    private readonly BpeOptions _options;
    private readonly TokenizerNormalizer? _normalizer;
    private readonly TokenizerPreTokenizer? _preTokenizer;
    private readonly AddedTokenMatcher _added;
    private readonly DecodedLeadingSpace _leadingSpace;
    private readonly bool _cleanUpSpaces;
    private readonly string[] _idToToken;
    private readonly byte[]?[] _idToBytes;
    private readonly Dictionary<string, AddedToken> _addedByContent;
    private readonly Dictionary<string, int[]> _wordCache = new(StringComparer.Ordinal);
    private readonly int _longestTokenChars;
    private readonly Lock _cacheLock = new();

    /// <param name="bpe">Vocabulary and merges.</param>
    /// <param name="options">BPE's options.</param>
    /// <param name="addedTokens">tokenizer.json's added_tokens.</param>
    /// <param name="normalizer">Applied to each piece between added tokens; null for none.</param>
    /// <param name="preTokenizer">Splits each normalized piece; null for none.</param>
    /// <param name="kind">How token strings map to bytes (from the decoder).</param>
    /// <param name="leadingSpace">What the decoder does with the space SentencePiece prepends.</param>
    /// <param name="specials">BOS/EOS and whether encoding adds them.</param>
    /// <param name="cleanUpSpaces">tokenizer_config's <c>clean_up_tokenization_spaces</c>: <see cref="Decode"/>'s default.</param>
    internal HfTokenizer(BpeModel bpe, BpeOptions options, IReadOnlyList<AddedToken> addedTokens, TokenizerNormalizer? normalizer,
        TokenizerPreTokenizer? preTokenizer, TokenizerKind kind, DecodedLeadingSpace leadingSpace, TokenizerSpecialTokens specials, bool cleanUpSpaces = false)
    {
        _bpe = bpe;
        _options = options;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _leadingSpace = leadingSpace;
        _cleanUpSpaces = cleanUpSpaces;
        Kind = kind;
        Specials = specials;
        AddedTokens = addedTokens;
        _added = new AddedTokenMatcher(addedTokens);
        _addedByContent = addedTokens.GroupBy(t => t.Content).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        int size = Math.Max(bpe.Vocab.Values.DefaultIfEmpty(-1).Max(), addedTokens.Select(t => t.Id).DefaultIfEmpty(-1).Max()) + 1;
        _idToToken = new string[size];
        foreach (var (token, id) in bpe.Vocab)
            _idToToken[id] = token;
        foreach (var t in addedTokens)
            _idToToken[t.Id] = t.Content;
        // A token stands for at most its own string's length of normalized text (a byte-level token's characters are its
        // bytes, each at most one input character; a byte-fallback or unknown token for less than its name's length).
        _longestTokenChars = _preTokenizer?.KeepsText == false ? 0 : Math.Max(1, _idToToken.Max(t => t?.Length ?? 0));
        _idToBytes = new byte[size][];
        for (int id = 0; id < size; id++)
            _idToBytes[id] = _idToToken[id] is null ? null : ComputeTokenBytes(id);
    }

    public TokenizerKind Kind { get; }
    public int VocabSize => _idToToken.Length;
    public int? UnknownTokenId => _options.UnknownId;
    public TokenizerSpecialTokens Specials { get; }
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    public static HfTokenizer Load(string modelDir) => HfTokenizerLoader.Load(modelDir);

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out var added) ? added.Id : _bpe.Vocab.TryGetValue(token, out int id) ? id : null;

    public bool IsSpecial(int id) => _addedByContent.TryGetValue(IdToToken(id) ?? "", out var t) && t.Special && t.Id == id;

    /// <summary>Encodes text; added tokens (including special ones) in the text are recognised verbatim.</summary>
    public int[] Encode(string text, bool addSpecialTokens = true) => EncodeWithin(text, addSpecialTokens, int.MaxValue)!;

    /// <summary>
    /// <see cref="Encode"/>, or null as soon as the text certainly becomes more than <paramref name="maxTokens"/> tokens: when
    /// a normalized segment is longer than that many of the vocabulary's longest token, or the ids so far pass it. So a
    /// prompt far beyond a context costs about one read of it, not its whole tokenization.
    /// </summary>
    public int[]? EncodeWithin(string text, bool addSpecialTokens, int maxTokens)
    {
        var ids = new List<int>();
        if (addSpecialTokens && Specials.AddBos && Specials.BosId is int bos)
            ids.Add(bos);
        int start = 0;
        foreach (var (at, length, token) in _added.Matches(text))
        {
            if (at > start && !EncodeSegment(text[start..at], ids, atInputStart: start == 0, maxTokens))
                return null;
            ids.Add(token.Id);
            start = at + length;
        }

        if (start < text.Length && !EncodeSegment(text[start..], ids, atInputStart: start == 0, maxTokens))
            return null;
        if (addSpecialTokens && Specials.AddEos && Specials.EosId is int eos)
            ids.Add(eos);
        return ids.Count <= maxTokens ? ids.ToArray() : null;
    }

    /// <summary>
    /// transformers' left truncation (<c>truncation=True, max_length=keep, truncation_side="left"</c>, as vLLM's
    /// <c>truncate_prompt_tokens</c>): the special tokens <paramref name="addSpecialTokens"/> adds stay, and of the text's
    /// own tokens only the last that fit in <paramref name="keep"/> beside them. Null when the text alone is more than
    /// <paramref name="maxTokens"/> tokens (<see cref="EncodeWithin"/>'s early stop); <paramref name="textTokens"/> is the
    /// text's own token count before truncation.
    /// </summary>
    public int[]? EncodeKeepingLast(string text, bool addSpecialTokens, int keep, int maxTokens, out int textTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        textTokens = 0;
        if (EncodeWithin(text, addSpecialTokens: false, maxTokens) is not { } content)
            return null;
        textTokens = content.Length;
        int? bos = addSpecialTokens && Specials.AddBos ? Specials.BosId : null, eos = addSpecialTokens && Specials.AddEos ? Specials.EosId : null;
        int room = Math.Max(0, keep - (bos is null ? 0 : 1) - (eos is null ? 0 : 1));
        return [.. bos is int b ? [b] : Array.Empty<int>(), .. content.AsSpan(Math.Max(0, content.Length - room)), .. eos is int e ? [e] : Array.Empty<int>()];
    }

    /// <summary>The bytes a token contributes to decoded text; empty for special tokens (they are not shown), null for unknown ids.</summary>
    public byte[]? TokenBytes(int id) => (uint)id < (uint)_idToBytes.Length ? _idToBytes[id] : null;

    /// <summary>The bytes a token adds to text decoded with special tokens skipped or shown; null for unknown ids.</summary>
    public byte[]? TokenBytes(int id, bool skipSpecialTokens) =>
        !skipSpecialTokens && IsSpecial(id) ? DecoderBytes(_idToToken[id]) : TokenBytes(id);

    /// <summary>
    /// The text of <paramref name="ids"/> as transformers' <c>decode</c> gives it: every token's string (special ones
    /// unless skipped; ids outside the vocabulary skipped) through the decoder — the byte alphabet, or <c>▁</c> → space
    /// with runs of <c>&lt;0xXX&gt;</c> tokens joined into characters (a run that is not UTF-8 gives one U+FFFD per byte),
    /// then the leading space rule — and, when <paramref name="cleanUpSpaces"/> (default: the tokenizer_config's
    /// <c>clean_up_tokenization_spaces</c>), transformers' clean-up of spaces before punctuation and contractions.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true, bool? cleanUpSpaces = null)
    {
        var bytes = new List<byte>();
        int byteRun = -1;
        bool firstToken = true;
        foreach (int id in ids)
        {
            if (IdToToken(id) is not string token || (skipSpecialTokens && IsSpecial(id)))
                continue;
            bool byteToken = Kind == TokenizerKind.SentencePieceBpe && ByteFallbackValue(token) is not null;
            if (!byteToken)
                EndByteRun(bytes, ref byteRun);
            else if (byteRun < 0)
                byteRun = bytes.Count;
            byte[] b = IsSpecial(id) ? DecoderBytes(token) : _idToBytes[id]!;
            if (firstToken && _leadingSpace == DecodedLeadingSpace.StrippedFromFirstToken && b.Length > 0 && b[0] == (byte)' ')
                b = b[1..];
            firstToken = false;
            bytes.AddRange(b);
        }

        EndByteRun(bytes, ref byteRun);
        string text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
        if (_leadingSpace == DecodedLeadingSpace.StrippedFromText && text.StartsWith(' '))
            text = text[1..];
        return cleanUpSpaces ?? _cleanUpSpaces ? CleanUpSpaces(text) : text;
    }

    /// <summary>
    /// One token's text as vLLM shows it in logprobs: <see cref="Decode"/> of the token alone (special tokens shown, the
    /// clean-up as configured), with the leading spaces a SentencePiece decoder strips from a text's start put back, one
    /// for each leading '▁' of the token the decoded text lacks ("▁world" is " world", not "world").
    /// </summary>
    public string TokenText(int id)
    {
        string text = Decode([id], skipSpecialTokens: false);
        if (Kind != TokenizerKind.SentencePieceBpe || IdToToken(id) is not string token)
            return text;
        int markers = token.Length - token.TrimStart(Metaspace).Length;
        int spaces = text.Length - text.TrimStart(' ').Length;
        return markers > spaces ? new string(' ', markers - spaces) + text : text;
    }

    /// <summary>transformers' <c>clean_up_tokenization</c>, replacement by replacement in its order.</summary>
    internal static string CleanUpSpaces(string text) => text
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal).Replace(" !", "!", StringComparison.Ordinal)
        .Replace(" ,", ",", StringComparison.Ordinal).Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal).Replace(" 've", "'ve", StringComparison.Ordinal)
        .Replace(" 're", "'re", StringComparison.Ordinal);

    /// <summary>Closes a run of byte-fallback bytes started at <paramref name="start"/>: kept if UTF-8, else one U+FFFD per byte (as ByteFallback).</summary>
    private static void EndByteRun(List<byte> bytes, ref int start)
    {
        if (start < 0)
            return;
        int count = bytes.Count - start;
        if (!System.Text.Unicode.Utf8.IsValid(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)[start..]))
        {
            bytes.RemoveRange(start, count);
            for (int i = 0; i < count; i++)
                bytes.AddRange("\uFFFD"u8);
        }

        start = -1;
    }

    /// <summary>Appends the segment's ids; false (ids then partial) once they certainly pass <paramref name="maxTokens"/>.</summary>
    private bool EncodeSegment(string text, List<int> ids, bool atInputStart, int maxTokens)
    {
        string normalized = _normalizer?.Apply(text) ?? text;
        if (normalized.Length == 0)
            return true;
        if (_longestTokenChars > 0 && ids.Count + (normalized.Length + (long)_longestTokenChars - 1) / _longestTokenChars > maxTokens)
            return false;
        var pieces = new List<string> { normalized };
        _preTokenizer?.Apply(pieces, atInputStart);
        foreach (string piece in pieces)
        {
            if (piece.Length > 0)
                ids.AddRange(EncodeWord(piece));
            if (ids.Count > maxTokens)
                return false;
        }

        return true;
    }

    private int[] EncodeWord(string word)
    {
        lock (_cacheLock)
        {
            if (_wordCache.TryGetValue(word, out var cached))
                return cached;
        }

        int[] result;
        if (_options.IgnoreMerges && _bpe.Vocab.TryGetValue(word, out int whole))
        {
            result = [whole];
        }
        else
        {
            var symbols = new List<int>(word.Length);
            for (int i = 0; i < word.Length; i++)
            {
                if (!char.IsSurrogate(word[i]) && _bpe.CharId(word[i]) is int charId and >= 0)
                {
                    symbols.Add(charId);
                    continue;
                }

                int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length ? 2 : 1;
                string piece = word.Substring(i, len);
                i += len - 1;
                if (_bpe.Vocab.TryGetValue(piece, out int id))
                    symbols.Add(id);
                else
                    AddUnknown(piece, symbols);
            }

            result = _bpe.Merge(symbols);
        }

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
        if (_options.ByteFallback)
        {
            var fallback = new List<int>();
            foreach (byte b in Encoding.UTF8.GetBytes(piece))
            {
                if (!_bpe.Vocab.TryGetValue($"<0x{b:X2}>", out int byteId))
                    break;
                fallback.Add(byteId);
            }

            if (fallback.Count == Encoding.UTF8.GetByteCount(piece))
            {
                symbols.AddRange(fallback);
                return;
            }
        }

        if (_options.UnknownId is int unk)
        {
            if (!_options.FuseUnknown || symbols.Count == 0 || symbols[^1] != unk)
                symbols.Add(unk);
            return;
        }

        throw new TokenizerException($"text contains '{piece}', which the vocabulary cannot represent and no unk_token is defined");
    }

    private byte[]? ComputeTokenBytes(int id)
    {
        string token = _idToToken[id];
        return _addedByContent.TryGetValue(token, out var added) && added.Id == id && added.Special ? [] : DecoderBytes(token);
    }

    /// <summary>What the decoder makes of one token's string, added tokens' included (transformers decodes them alike).</summary>
    private byte[] DecoderBytes(string token)
    {
        if (Kind == TokenizerKind.ByteLevelBpe)
            return ByteLevelAlphabet.Decode(token) ?? Encoding.UTF8.GetBytes(token);
        return ByteFallbackValue(token) is byte raw ? [raw] : Encoding.UTF8.GetBytes(token.Replace(Metaspace, ' '));
    }

    /// <summary>The byte a <c>&lt;0xXX&gt;</c> token stands for; null for any other string.</summary>
    private static byte? ByteFallbackValue(string token) =>
        token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
        && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte raw) ? raw : null;
}
