using System.Text.Json.Nodes;
using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Tokenization;

/// <summary>A hand-made Llama-2-style tokenizer.json (▁ for spaces, BPE merges, &lt;0xXX&gt; byte fallback).</summary>
public sealed class SentencePieceTokenizerTests : IDisposable
{
    private readonly string _dir = TestDirectories.Create("sp-tokenizer");
    private readonly HfTokenizer _tokenizer;

    public SentencePieceTokenizerTests()
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
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), root.ToJsonString());
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"),
            """{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "chat_template": "{{ bos_token }}{% for m in messages %}[INST] <<SYS>> ... [/INST]{% endfor %}"}""");
        _tokenizer = HfTokenizer.Load(_dir);
    }

    [Fact]
    public void Load_MetaspaceStyle_IsSentencePieceKind() => Assert.Equal(TokenizerKind.SentencePieceBpe, _tokenizer.Kind);

    [Fact]
    public void Encode_Words_MergesToWholePieces()
    {
        Assert.Equal(new[] { 1, 259 + 12, 259 + 17 }, _tokenizer.Encode("hello world"));
        Assert.Equal(new[] { 259 + 12, 259 + 17 }, _tokenizer.Encode("hello world", addSpecialTokens: false));
    }

    [Fact]
    public void Encode_UnknownCharacter_FallsBackToUtf8Bytes()
    {
        var ids = _tokenizer.Encode("hello 😀", addSpecialTokens: false);
        Assert.Equal(new[] { 259 + 12, 259, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80 }, ids);
        Assert.Equal("hello 😀", _tokenizer.Decode(ids));
    }

    [Fact]
    public void IncrementalDetokenizer_ByteFallbackTokens_HoldsBackUntilCharacterComplete()
    {
        var detok = new IncrementalDetokenizer(_tokenizer);
        Assert.Equal(" hello", detok.Push(259 + 12));
        Assert.Equal(" ", detok.Push(259));
        Assert.Equal("", detok.Push(3 + 0xF0));
        Assert.Equal("", detok.Push(3 + 0x9F));
        Assert.Equal("", detok.Push(3 + 0x98));
        Assert.Equal("😀", detok.Push(3 + 0x80));
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
