using CsCheck;
using Serving.Server.Api.OpenAi.Tools;
using static Serving.Server.Tests.Api.OpenAi.Tools.ToolCallReading;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

/// <summary>
/// Every reader on generated texts made of its markers, JSON punctuation and words: streamed in any pieces it gives the
/// same message as read whole, and it never throws — a model's text is whatever the model wrote.
/// </summary>
public sealed class ToolCallReaderPropertyTests
{
    private static readonly string[] Fragments =
    [
        "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", "<tool", "_call>", "[TOOL", "{", "}", "[", "]", "\"", "\\", ";",
        ",", ":", " ", "\n", "x", "\"name\"", "\"f\"", "\"arguments\"", "\"parameters\"", "{}", "\"name\": \"f\"", "\"arguments\": {\"a\": [1, \"]\"]}",
        "{\"name\": \"g\", \"arguments\": {}}", "{\"name\":\"h\",\"parameters\":{}}", "🙂", "\u00e9",
        "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "\n```json\n", "\n```", "<｜",
        "f(", "x=", ")", "'", "True", "None", "1.5", "<|python_start|>", "<|python_end|>",
        "[{\"name\": \"f\", \"arguments\": {", "<|tool_call|>", "<｜tool▁call▁begin｜>f<｜tool▁sep｜>{", "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{",
    ];

    private static readonly (string Name, Factory Make)[] Readers =
    [
        ("hermes", (o, ids) => new HermesToolCallReader(o, ids)),
        ("llama3_json", (o, ids) => new Llama3JsonToolCallReader(o, ids)),
        ("mistral", (o, ids) => new MistralToolCallReader(o, ids)),
        ("deepseek_v3", (o, ids) => new DeepSeekToolCallReader(o, ids)),
        ("pythonic", (o, ids) => new PythonicToolCallReader(o, ids)),
        ("granite", (o, ids) => new MistralToolCallReader(o, ids, MistralToolCallReader.GraniteMarker)),
        ("required", (o, ids) => new CallListReader(o, ids)),
        ("named", (o, ids) => new NamedToolCallReader(o, ids, new FunctionTool("f", null))),
    ];

    private static readonly Gen<(string Text, int[] Cuts)> Texts =
        Gen.Int[0, Fragments.Length - 1].Array[0, 24].Select(parts => string.Concat(parts.Select(p => Fragments[p])))
            .SelectMany(text => Gen.Int[1, Math.Max(1, text.Length)].Array[0, 8].Select(cuts => (text, cuts)));

    [Fact]
    public void Read_GeneratedTexts_StreamedInAnyPiecesSameAsWhole()
    {
        foreach (var (name, make) in Readers)
            Texts.Sample(t =>
            {
                string whole = Whole(make, t.Text).ToJsonString();
                string streamed = Streamed(make, t.Text, t.Cuts).ToJsonString();
                Assert.True(whole == streamed, $"{name}: {System.Text.Json.JsonSerializer.Serialize(t.Text)} cut at [{string.Join(", ", t.Cuts)}]\nwhole:    {whole}\nstreamed: {streamed}");
            }, iter: 3_000, seed: FuzzSeedOrNull());
    }

    [Fact]
    public void Read_TextWithoutCalls_ContentIsTheTextExactly()
    {
        foreach (var (name, make) in Readers[..6])
            Gen.String[0, 40].Where(s => !s.Contains('<') && !s.Contains('[') && !s.TrimStart().StartsWith('{')).Sample(text =>
                Assert.True(Whole(make, text)["content"]!.GetValue<string>() == text, $"{name}: {text}"), iter: 2_000);
    }

    private static string? FuzzSeedOrNull() => Resilience.FuzzSeed.ForCsCheck("0N0XIzNsQ0T1");
}
