using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization;

/// <summary>Reads <c>tokenizer.json</c> and <c>tokenizer_config.json</c> into an <see cref="HfTokenizer"/>, rejecting what it cannot reproduce.</summary>
internal static class HfTokenizerLoader
{

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

    /// <summary>
    /// Builds the pipeline tokenizer.json describes. Every component and option is read as what it is; a kind the
    /// pipeline does not implement is a <see cref="TokenizerException"/> naming it, never an approximation.
    /// </summary>
    public static HfTokenizer Build(JsonObject root, JsonObject? config, string source)
    {
        var model = root["model"] as JsonObject ?? throw new TokenizerException($"{source}: missing 'model'");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE")
            throw new TokenizerException($"{source}: model type '{type}' is not supported (only BPE)");
        foreach (string affix in (string[])["continuing_subword_prefix", "end_of_word_suffix"])
            if (model[affix]?.GetValue<string>() is { Length: > 0 } value)
                throw new TokenizerException($"{source}: BPE {affix} '{value}' is not supported");
        var vocabNode = model["vocab"] as JsonObject ?? throw new TokenizerException($"{source}: model.vocab missing");
        var vocab = vocabNode.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>(), StringComparer.Ordinal);
        var bpe = new BpeModel(vocab, ReadMerges(model["merges"] as JsonArray, source));

        var added = (root["added_tokens"] as JsonArray ?? []).Select(t => new AddedToken(t!["id"]!.GetValue<int>(), t["content"]!.GetValue<string>(),
            t["special"]?.GetValue<bool>() ?? false, t["lstrip"]?.GetValue<bool>() ?? false, t["rstrip"]?.GetValue<bool>() ?? false,
            t["single_word"]?.GetValue<bool>() ?? false)).ToList();
        var normalizer = TokenizerNormalizer.FromJson(root["normalizer"] as JsonObject, source);
        // A normalized added token is matched on normalized text; where the normalizer would change the token itself
        // that differs from matching the raw text, which is what is implemented: refused rather than approximated.
        foreach (var t in root["added_tokens"] as JsonArray ?? [])
            if (t?["normalized"]?.GetValue<bool>() == true && normalizer is not null && normalizer.Apply(t["content"]!.GetValue<string>()) != t["content"]!.GetValue<string>())
                throw new TokenizerException($"{source}: added token '{t["content"]}' is normalized and the normalizer changes it; this is not supported");
        var preTokenizer = TokenizerPreTokenizer.FromJson(root["pre_tokenizer"] as JsonObject, source);
        var (kind, leadingSpace) = Decoder(root["decoder"] as JsonObject, source);
        CheckPostProcessor(root["post_processor"] as JsonObject, source);

        string? unkToken = model["unk_token"]?.GetValue<string>();
        int? unkId = unkToken is not null && vocab.TryGetValue(unkToken, out int u) ? u : null;
        var options = new BpeOptions(unkId, model["byte_fallback"]?.GetValue<bool>() ?? false, model["fuse_unk"]?.GetValue<bool>() ?? false,
            model["ignore_merges"]?.GetValue<bool>() ?? false);
        var specials = ReadSpecials(root, config, vocab, added);
        // A missing clean_up_tokenization_spaces is false in current transformers (older versions defaulted to true and warned).
        bool cleanUpSpaces = config?["clean_up_tokenization_spaces"]?.GetValue<bool>() ?? false;
        return new HfTokenizer(bpe, options, added, normalizer, preTokenizer, kind, leadingSpace, specials, cleanUpSpaces);
    }

    /// <summary>
    /// The decoder says how token strings become text: ByteLevel (the byte alphabet), or SentencePiece's
    /// <c>Replace('▁', ' ')</c> + <c>ByteFallback</c> + <c>Fuse</c> + <c>Strip(' ', 1, 0)</c> (or a Metaspace decoder).
    /// </summary>
    private static (TokenizerKind Kind, DecodedLeadingSpace LeadingSpace) Decoder(JsonObject? decoder, string source)
    {
        string type = decoder?["type"]?.GetValue<string>() ?? throw new TokenizerException($"{source}: tokenizer.json has no decoder");
        switch (type)
        {
            case "ByteLevel":
                return (TokenizerKind.ByteLevelBpe, DecodedLeadingSpace.Kept);
            case "Metaspace":
                string scheme = decoder["prepend_scheme"]?.GetValue<string>() ?? (decoder["add_prefix_space"]?.GetValue<bool>() == false ? "never" : "always");
                return (TokenizerKind.SentencePieceBpe, scheme != "never" ? DecodedLeadingSpace.StrippedFromFirstToken : DecodedLeadingSpace.Kept);
            case "Sequence":
                bool strip = false;
                foreach (var step in decoder["decoders"] as JsonArray ?? [])
                {
                    string stepType = step?["type"]?.GetValue<string>() ?? "";
                    switch (stepType)
                    {
                        case "Replace" when (step!["pattern"]?["String"]?.GetValue<string>() == "\u2581" && step["content"]?.GetValue<string>() == " "):
                        case "ByteFallback" or "Fuse":
                            break;
                        case "Strip" when step!["content"]?.GetValue<string>() == " " && step["stop"]?.GetValue<int>() == 0 && step["start"]?.GetValue<int>() is 0 or 1:
                            strip = step["start"]!.GetValue<int>() == 1;
                            break;
                        default:
                            throw new TokenizerException($"{source}: decoder step '{stepType}' ({step?.ToJsonString()}) is not supported");
                    }
                }

                return (TokenizerKind.SentencePieceBpe, strip ? DecodedLeadingSpace.StrippedFromText : DecodedLeadingSpace.Kept);
            default:
                throw new TokenizerException($"{source}: decoder '{type}' is not supported (ByteLevel, Metaspace, or SentencePiece's Replace/ByteFallback/Fuse/Strip sequence)");
        }
    }

    private static void CheckPostProcessor(JsonObject? post, string source)
    {
        string? type = post?["type"]?.GetValue<string>();
        switch (type)
        {
            case null or "ByteLevel" or "TemplateProcessing":
                return;
            case "Sequence":
                foreach (var p in post!["processors"] as JsonArray ?? [])
                    CheckPostProcessor(p as JsonObject, source);
                return;
            default:
                throw new TokenizerException($"{source}: post_processor '{type}' is not supported (TemplateProcessing, ByteLevel, Sequence)");
        }
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

        var templates = config?["chat_template"] switch
        {
            JsonValue v => new Dictionary<string, string> { [ChatTemplate.DefaultName] = v.GetValue<string>() },
            JsonArray list => list.Where(t => t?["name"] is not null && t["template"] is not null)
                .ToDictionary(t => t!["name"]!.GetValue<string>(), t => t!["template"]!.GetValue<string>(), StringComparer.Ordinal),
            _ => new Dictionary<string, string>(),
        };
        return new TokenizerSpecialTokens(bosId, eosId, addBos ?? false, addEos ?? false, templates, bos, eos);
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
}
