using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using CsCheck;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// <see cref="RestFuzzTests"/>' bodies against the score and rerank endpoints of a server that scores with two tokens'
/// logits (<c>--score-tokens no,yes</c>: each pair one prompt of two tokenized texts), a tenth as many, plus as many
/// well-formed score and rerank calls of random texts (empty, odd Unicode, past the 24-token context, lists of one to six)
/// that reach the scoring. The same verdict: 2xx or 4xx only, no error logged, still serving.
/// </summary>
public sealed class ScoreTokensFuzzTests(ITestOutputHelper output) : RestFuzzTests(output)
{
    protected override int Count => Iterations / 10;

    protected override IReadOnlyList<string> FuzzedPaths => ["/score", "/v1/rerank", "/rerank", "/v1/score", "/v2/rerank"];

    protected override string[] ExtraArguments => ["--score-tokens", "no,yes"];

    private static readonly Gen<string> Text = Gen.OneOf(Gen.String[0, 12], Gen.String[Gen.Char["ab \n<>é😀"], 0, 80], Gen.Const(""));

    /// <summary>A /score-shaped and a /rerank-shaped body alike: the endpoint each goes to reads its own fields.</summary>
    private static readonly Gen<string> WellFormed = Gen.Select(Text, Text.Array[1, 6], Gen.Int[0, 8], Gen.Bool).Select((first, rest, topN, list) =>
        new JsonObject
        {
            ["model"] = "serving-demo-tiny",
            ["text_1"] = list ? new JsonArray([.. rest.Select(t => (JsonNode)t)]) : first,
            ["text_2"] = new JsonArray([.. rest.Select(t => (JsonNode)t)]),
            ["query"] = first,
            ["documents"] = new JsonArray([.. rest.Select(t => (JsonNode)t)]),
            ["top_n"] = topN,
        }.ToJsonString());

    protected override void AddBodies(ConcurrentQueue<byte[]> bodies) =>
        WellFormed.Sample(b => bodies.Enqueue(System.Text.Encoding.UTF8.GetBytes(b)), iter: Count, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0P1"));
}
