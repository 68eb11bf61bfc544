using System.Text.Json.Nodes;
using Serving.Engine.Tokenization;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// Writes a GPT-2 byte-level BPE <c>tokenizer.json</c> (optionally truncated to the first N ranks, which stays a
/// consistent BPE vocabulary because every merge's parts rank below it), plus ChatML special tokens and a
/// <c>tokenizer_config.json</c> with a ChatML chat template.
/// </summary>
internal static class SyntheticTokenizerWriter
{
    public const string EndOfText = "<|endoftext|>";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";

    public const string ChatMlTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>Writes the files; returns the vocabulary size (BPE tokens + 3 special tokens).</summary>
    public static int Write(string dir, int? vocabSize)
    {
        var gpt2 = Gpt2Vocabulary.Instance;
        int bpeCount = vocabSize is int v ? Math.Min(v - 3, gpt2.Tokens.Count) : gpt2.Tokens.Count;
        if (bpeCount < 256)
            throw new ArgumentException("vocabulary must hold at least the 256 byte tokens plus 3 special tokens");
        var vocab = new JsonObject();
        for (int i = 0; i < bpeCount; i++)
            vocab[ByteLevelAlphabet.Encode(gpt2.Tokens[i])] = i;
        var merges = new JsonArray();
        foreach (var (left, right) in gpt2.Merges(bpeCount))
            merges.Add($"{ByteLevelAlphabet.Encode(left)} {ByteLevelAlphabet.Encode(right)}");

        int eot = bpeCount, imStart = bpeCount + 1, imEnd = bpeCount + 2;
        var added = new JsonArray(AddedToken(eot, EndOfText), AddedToken(imStart, ImStart), AddedToken(imEnd, ImEnd));
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
        var config = new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer",
            ["bos_token"] = EndOfText,
            ["eos_token"] = ImEnd,
            ["unk_token"] = EndOfText,
            ["add_bos_token"] = false,
            ["model_max_length"] = 2048,
            ["chat_template"] = ChatMlTemplate,
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString(new() { WriteIndented = true }));
        return bpeCount + 3;
    }

    private static JsonObject AddedToken(int id, string content) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = false,
        ["lstrip"] = false,
        ["rstrip"] = false,
        ["normalized"] = false,
        ["special"] = true,
    };
}
