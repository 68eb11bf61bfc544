using System.Text.Json.Nodes;

namespace Serving.Engine.Tests.Support;

/// <summary>A hand-made Llama-2-style tokenizer.json (▁ for spaces, BPE merges, &lt;0xXX&gt; byte fallback) and its config.</summary>
internal static class TinySentencePiece
{
    public static void Write(string dir)
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++)
            vocab[$"<0x{b:X2}>"] = 3 + b;
        string[] pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "hell", "hello", "▁hello", "▁w", "or", "▁wor", "ld", "▁world"];
        for (int i = 0; i < pieces.Length; i++)
            vocab[pieces[i]] = 259 + i;
        var merges = new JsonArray("h e", "l l", "he ll", "hell o", "▁ hello", "▁ w", "o r", "▁w or", "l d", "▁wor ld");
        var root = new JsonObject
        {
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = 0, ["content"] = "<unk>", ["special"] = true },
                new JsonObject { ["id"] = 1, ["content"] = "<s>", ["special"] = true },
                new JsonObject { ["id"] = 2, ["content"] = "</s>", ["special"] = true }),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
            },
            ["pre_tokenizer"] = null,
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["unk_token"] = "<unk>", ["byte_fallback"] = true, ["fuse_unk"] = true,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            """{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "chat_template": "{{ bos_token }}{% for m in messages %}[INST] <<SYS>> ... [/INST]{% endfor %}"}""");
    }
}
