using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization;

/// <summary>Reads <c>tokenizer.json</c> and <c>tokenizer_config.json</c> into an <see cref="HfTokenizer"/>, rejecting what it cannot reproduce.</summary>
internal static class HfTokenizerLoader
{
    /// <summary>The GPT-2 pre-tokenizer regex that a plain ByteLevel pre-tokenizer with use_regex implies.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static HfTokenizer Load(string modelDir)
    {
        string path = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(path))
            throw new TokenizerException($"{modelDir}: tokenizer.json not found");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new TokenizerException($"{path}: expected a JSON object");
        }
        catch (JsonException ex)
        {
            throw new TokenizerException($"{path}: not valid JSON: {ex.Message}");
        }

        var config = ReadConfig(Path.Combine(modelDir, "tokenizer_config.json"));
        return Build(root, config, path);
    }

    public static HfTokenizer Build(JsonObject root, JsonObject? config, string source)
    {
        var model = root["model"] as JsonObject ?? throw new TokenizerException($"{source}: missing 'model'");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE")
            throw new TokenizerException($"{source}: model type '{type}' is not supported (only BPE)");
        var vocabNode = model["vocab"] as JsonObject ?? throw new TokenizerException($"{source}: model.vocab missing");
        var vocab = vocabNode.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>(), StringComparer.Ordinal);
        var merges = ReadMerges(model["merges"] as JsonArray, source);
        var bpe = new BpeModel(vocab, merges);
        bool ignoreMerges = model["ignore_merges"]?.GetValue<bool>() ?? false;

        var added = (root["added_tokens"] as JsonArray ?? [])
            .Select(t => new AddedToken(t!["id"]!.GetValue<int>(), t["content"]!.GetValue<string>(), t["special"]?.GetValue<bool>() ?? false))
            .ToList();

        bool byteFallback = model["byte_fallback"]?.GetValue<bool>() ?? false;
        var pre = root["pre_tokenizer"] as JsonObject;
        var normalizer = root["normalizer"] as JsonObject;
        bool metaspace = ContainsType(pre, "Metaspace") || ContainsType(normalizer, "Prepend") || byteFallback;
        var kind = metaspace ? TokenizerKind.SentencePieceBpe : TokenizerKind.ByteLevelBpe;

        CodePointRegex? preRegex = null;
        bool prependSpace = true, prependEvery = false;
        if (kind == TokenizerKind.ByteLevelBpe)
            preRegex = ByteLevelPreTokenizer(pre, source);
        else
            (prependSpace, prependEvery) = SentencePiecePrepend(pre, normalizer);

        string? unkToken = model["unk_token"]?.GetValue<string>();
        int? unkId = unkToken is not null && vocab.TryGetValue(unkToken, out int u) ? u : null;
        var specials = ReadSpecials(root, config, vocab, added);
        return new HfTokenizer(kind, bpe, added, preRegex, Normalization(normalizer, source), prependSpace, prependEvery, unkId, specials, ignoreMerges);
    }

    private static JsonObject? ReadConfig(string path)
    {
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        }
        catch (JsonException ex)
        {
            throw new TokenizerException($"{path}: not valid JSON: {ex.Message}");
        }
    }

    private static IEnumerable<(string, string)> ReadMerges(JsonArray? merges, string source)
    {
        foreach (var m in merges ?? [])
        {
            if (m is JsonArray pair && pair.Count == 2)
            {
                yield return (pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>());
                continue;
            }

            string text = m!.GetValue<string>();
            int space = text.IndexOf(' ', 1);
            if (space < 0)
                throw new TokenizerException($"{source}: merge '{text}' is not 'left right'");
            yield return (text[..space], text[(space + 1)..]);
        }
    }

    private static CodePointRegex? ByteLevelPreTokenizer(JsonObject? pre, string source)
    {
        if (pre is null)
            return null;
        string kind = pre["type"]?.GetValue<string>() ?? "";
        switch (kind)
        {
            case "ByteLevel":
                if (pre["add_prefix_space"]?.GetValue<bool>() == true)
                    throw new TokenizerException($"{source}: ByteLevel add_prefix_space=true is not supported");
                return pre["use_regex"]?.GetValue<bool>() == false ? null : new CodePointRegex(Gpt2Pattern);
            case "Sequence":
                CodePointRegex? regex = null;
                foreach (var step in pre["pretokenizers"] as JsonArray ?? [])
                {
                    string stepType = step!["type"]?.GetValue<string>() ?? "";
                    if (stepType == "Split")
                    {
                        string? pattern = step["pattern"]?["Regex"]?.GetValue<string>()
                            ?? (step["pattern"]?["String"]?.GetValue<string>() is string s ? Regex.Escape(s) : null);
                        string behavior = step["behavior"]?.GetValue<string>() ?? "Isolated";
                        if (pattern is null || behavior != "Isolated" || step["invert"]?.GetValue<bool>() == true || regex is not null)
                            throw new TokenizerException($"{source}: pre_tokenizer Split must be a single isolated, non-inverted regex");
                        regex = new CodePointRegex(pattern);
                    }
                    else if (stepType == "ByteLevel")
                    {
                        if (step["use_regex"]?.GetValue<bool>() != false)
                            regex ??= new CodePointRegex(Gpt2Pattern);
                    }
                    else
                    {
                        throw new TokenizerException($"{source}: pre_tokenizer step '{stepType}' is not supported");
                    }
                }

                return regex;
            default:
                throw new TokenizerException($"{source}: pre_tokenizer type '{kind}' is not supported");
        }
    }

    private static (bool Prepend, bool EverySegment) SentencePiecePrepend(JsonObject? pre, JsonObject? normalizer)
    {
        if (ContainsType(normalizer, "Prepend"))
            return (true, true);
        if (pre is not null && FindType(pre, "Metaspace") is JsonObject meta)
        {
            string scheme = meta["prepend_scheme"]?.GetValue<string>() ?? (meta["add_prefix_space"]?.GetValue<bool>() == false ? "never" : "always");
            return (scheme != "never", scheme == "always");
        }

        return (false, false);
    }

    private static NormalizationForm? Normalization(JsonObject? normalizer, string source)
    {
        if (normalizer is null)
            return null;
        if (ContainsType(normalizer, "NFC")) return NormalizationForm.FormC;
        if (ContainsType(normalizer, "NFKC")) return NormalizationForm.FormKC;
        if (ContainsType(normalizer, "NFD")) return NormalizationForm.FormD;
        if (ContainsType(normalizer, "NFKD")) return NormalizationForm.FormKD;
        string type = normalizer["type"]?.GetValue<string>() ?? "";
        if (type is "Sequence" or "Prepend" or "Replace")
            return null;
        throw new TokenizerException($"{source}: normalizer type '{type}' is not supported");
    }

    private static TokenizerSpecialTokens ReadSpecials(JsonObject root, JsonObject? config, Dictionary<string, int> vocab, List<AddedToken> added)
    {
        string? bos = TokenContent(config?["bos_token"]);
        string? eos = TokenContent(config?["eos_token"]);
        int? Id(string? token) => token is null ? null : added.FirstOrDefault(a => a.Content == token)?.Id ?? (vocab.TryGetValue(token, out int v) ? v : null);
        bool? addBos = config?["add_bos_token"]?.GetValue<bool>();
        bool? addEos = config?["add_eos_token"]?.GetValue<bool>();
        int? bosId = Id(bos), eosId = Id(eos);
        // Without the config's flags, the tokenizer.json post-processor says what encoding adds (Llama-3.1's
        // TemplateProcessing adds <|begin_of_text|>): read as what it is, a template of special tokens around the text.
        if (TemplateProcessing(root["post_processor"] as JsonObject) is { } post)
        {
            if (addBos is null && post.Before is { } before)
                (addBos, bosId) = (true, before);
            if (addEos is null && post.After is { } after)
                (addEos, eosId) = (true, after);
        }

        string? template = config?["chat_template"] switch
        {
            JsonValue v => v.GetValue<string>(),
            JsonArray list => list.FirstOrDefault(t => t?["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
            _ => null,
        };
        return new TokenizerSpecialTokens(bosId, eosId, addBos ?? false, addEos ?? false, template, bos, eos);
    }

    /// <summary>
    /// The special token a <c>TemplateProcessing</c> post-processor (alone or in a <c>Sequence</c>) puts before and after a
    /// single sequence; more than one on a side is refused (no Llama-family checkpoint does that).
    /// </summary>
    private static (int? Before, int? After)? TemplateProcessing(JsonObject? post)
    {
        if (post is null)
            return null;
        if (post["type"]?.GetValue<string>() == "Sequence")
            return (post["processors"] as JsonArray ?? []).Select(p => TemplateProcessing(p as JsonObject)).LastOrDefault(t => t is not null);
        if (post["type"]?.GetValue<string>() != "TemplateProcessing")
            return null;
        var before = new List<int>();
        var after = new List<int>();
        bool seenText = false;
        foreach (var piece in post["single"] as JsonArray ?? [])
        {
            if (piece?["Sequence"] is not null)
            {
                seenText = true;
                continue;
            }

            string token = piece?["SpecialToken"]?["id"]?.GetValue<string>() ?? throw new TokenizerException("post_processor: a TemplateProcessing piece is neither a SpecialToken nor a Sequence");
            var ids = post["special_tokens"]?[token]?["ids"] as JsonArray ?? throw new TokenizerException($"post_processor: special token '{token}' has no ids");
            (seenText ? after : before).AddRange(ids.Select(i => i!.GetValue<int>()));
        }

        if (before.Count > 1 || after.Count > 1)
            throw new TokenizerException("post_processor: TemplateProcessing with more than one special token on a side is not supported");
        return (before.Count == 1 ? before[0] : null, after.Count == 1 ? after[0] : null);
    }

    private static string? TokenContent(JsonNode? node) => node switch
    {
        JsonValue v => v.GetValue<string>(),
        JsonObject o => o["content"]?.GetValue<string>(),
        _ => null,
    };

    private static bool ContainsType(JsonObject? node, string type) => node is not null && FindType(node, type) is not null;

    private static JsonObject? FindType(JsonObject node, string type)
    {
        if (node["type"]?.GetValue<string>() == type)
            return node;
        foreach (string key in new[] { "normalizers", "pretokenizers" })
            foreach (var child in node[key] as JsonArray ?? [])
                if (child is JsonObject o && FindType(o, type) is JsonObject found)
                    return found;
        return null;
    }
}
