using System.Buffers.Binary;
using System.Collections.Concurrent;
using CsCheck;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Serving.Server.Tests.Support;
using Serving.V1;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Generated <c>GenerateRequest</c> messages through the real gRPC service (every field, every range: NaN temperatures,
/// negative token ids, huge max_tokens, mixtures with odd weights) and raw random bytes as the request message: every call
/// ends with a client-error status (never INTERNAL or UNKNOWN), and the server still serves afterwards.
/// </summary>
public sealed class GrpcFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string[] Models = ["serving-demo-tiny", "demo-all-r8", "demo-mlp-r4", "auto", "", "nope", "demo-all-r8/../x"];
    private static readonly StatusCode[] ServerFaults = [StatusCode.Internal, StatusCode.Unknown, StatusCode.DataLoss, StatusCode.Unimplemented];
    private readonly string _cache = TestDirectories.Path("grpc-fuzz");
    private readonly CapturedLogs _logs = new();
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartAsync(_logs.AddTo, "--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "8", "--max-context", "24",
            "--max-queued-requests", "4096", "--Logging:LogLevel:Default", "Warning", "--speculation", "ngram", "--prompt-lookup-min", "1");

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }

    private static Gen<T> Pick<T>(params T[] items) => Gen.Int[0, items.Length - 1].Select(i => items[i]);

    private static readonly Gen<GenerateRequest> Requests = Gen.Select(
        Gen.Select(Pick(Models), Gen.Bool, Gen.String[0, 20], Gen.Int[-5, 40_000].Array[0, 30]),
        Gen.Select(Gen.Int[0, 3], Pick(-5, 0, 1, 2, 24, 1000, int.MaxValue, int.MinValue), Pick(double.NaN, double.PositiveInfinity, -1.0, 0.0, 0.7, 2.0, 1e300)),
        Gen.Select(Pick(double.NaN, -0.1, 0.0, 0.5, 1.0, 1.1), Pick(-1, 0, 1, 50, int.MaxValue), Gen.String[0, 6].Array[0, 4], Gen.Bool),
        Gen.Select(Gen.Select(Pick(Models), Pick(float.NaN, float.NegativeInfinity, -1f, 0f, 0.5f, 1f, 1e30f)).Array[0, 4], Pick(Models).Array[0, 3], Pick(-1, 0, 1, 2, 100)),
        Gen.Select(Gen.Int[-5, 60_000].Array[0, 4], Gen.Int[0, 2], Gen.Bool, Gen.Select(Gen.Int[-5, 60_000], Pick(float.NaN, -101f, -100f, 0f, 5f, 100f)).Array[0, 3]),
        Gen.Select(Gen.Frequency((9, Gen.Const(0)), (1, Pick(-1, 3, int.MinValue))), Gen.Frequency((6, Gen.Const(0)), (1, Pick(-100, -2, -1, 1, 5, 25, int.MaxValue))),
            Pick("a", "fox", "the", "🙂", "", " ", "\u0000").Array[0, 2],
            Gen.Frequency((6, Gen.Const("")), (1, Pick("root ::= \"a\"", "root ::= [a-z]{1,5}", "root ::= x", "root ::= a\na ::= a{1000} | \"x\"", "start: \"a\"", "root ::= (")))))
        .Select((core, limits, sampling, routing, output, added) =>
        {
            var (priority, truncate, badWords, grammar) = added;
            var (model, useTokens, prompt, tokens) = core;
            var (present, maxTokens, temperature) = limits;
            var (topP, topK, stops, ignoreEos) = sampling;
            var (mix, candidates, routingTopK) = routing;
            var r = new GenerateRequest { Model = model, IgnoreEos = ignoreEos };
            if (useTokens)
                r.PromptTokenIds.AddRange(tokens);
            else
                r.Prompt = prompt;
            if ((present & 1) != 0)
                r.MaxTokens = maxTokens;
            if ((present & 2) != 0)
            {
                r.Temperature = temperature;
                r.TopP = topP;
                r.TopK = topK;
            }

            var (allowedIds, flags, includeStop, biases) = output;
            r.AllowedTokenIds.AddRange(allowedIds);
            if (flags > 0)
            {
                r.SkipSpecialTokens = flags == 1;
                r.AddSpecialTokens = flags == 2;
            }

            r.IncludeStopStrInOutput = includeStop;
            foreach (var (id, bias) in biases)
                r.LogitBias[id] = bias;
            r.Stop.AddRange(stops);
            r.Adapters.AddRange(mix.Select(m => new AdapterWeight { Id = m.Item1, Weight = m.Item2 }));
            r.RoutingCandidates.AddRange(candidates);
            if (routingTopK != 100)
                r.RoutingTopK = routingTopK;
            if (routingTopK is 0 or 2)
                r.CacheSalt = routingTopK == 0 ? "" : prompt;              // an empty salt is refused, any other partitions the cache
            if (priority != 0)
                r.Priority = priority;                                     // a first-come-first-served server refuses any but 0
            if (truncate != 0)
                r.TruncatePromptTokens = truncate;
            if (present == 3)
                r.BadWords.AddRange(badWords);
            if (present == 1 && stops.Length > 0)
                r.Prediction = string.Concat(stops);                        // drafts from generated text, cut by the short context
            if (grammar.Length > 0)
                r.StructuredOutput = new StructuredOutput { Grammar = grammar };
            return r;
        });

    [Fact]
    public async Task Generate_GeneratedMessages_OnlyClientErrorStatuses()
    {
        var inputs = new ConcurrentQueue<GenerateRequest>();
        Requests.Sample(inputs.Enqueue, iter: RestFuzzTests.Iterations, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O4"));
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var statuses = new ConcurrentDictionary<StatusCode, int>();
        var failures = new ConcurrentQueue<string>();
        var all = inputs.ToArray();
        await Parallel.ForEachAsync(Enumerable.Range(0, all.Length), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            var status = StatusCode.OK;
            try
            {
                var deadline = DateTime.UtcNow.AddSeconds(30);
                if (i % 4 == 0)
                {
                    using var call = client.GenerateStream(all[i], deadline: deadline);
                    while (await call.ResponseStream.MoveNext(CancellationToken.None))
                    {
                    }
                }
                else
                {
                    await client.GenerateAsync(all[i], deadline: deadline);
                }
            }
            catch (RpcException ex)
            {
                status = ex.StatusCode;
                if (ServerFaults.Contains(status) || status == StatusCode.DeadlineExceeded)
                    failures.Enqueue($"{status} {ex.Status.Detail} for {all[i]}");
            }

            statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
        });

        output.WriteLine($"{all.Length} messages: " + string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}")));
        // The server's own error log says why a call failed (an UNKNOWN status carries no detail); show it with the calls.
        Assert.True(failures.IsEmpty, $"{failures.Count} failures:\n{string.Join("\n", failures.Take(10))}\nserver errors:\n"
            + string.Join("\n", _logs.AtLeast(LogLevel.Error).Take(3).Select(e => $"{e}\n{e.Exception?.StackTrace}")));
        Assert.True(statuses.ContainsKey(StatusCode.OK) && statuses.ContainsKey(StatusCode.InvalidArgument), "the fuzz reached neither success nor validation");
        var reply = await client.GenerateAsync(new GenerateRequest { Model = "serving-demo-tiny", Prompt = "still here", MaxTokens = 2 });
        Assert.Equal(2, reply.Usage.CompletionTokens);
        var errors = _logs.AtLeast(LogLevel.Error);
        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(5)));
    }

    [Fact]
    public async Task Generate_RandomBytesAsMessage_ClientErrorNeverInternal()
    {
        var payloads = new ConcurrentQueue<byte[]>();
        Gen.Byte.Array[0, 200].Sample(payloads.Enqueue, iter: Math.Max(1_000, RestFuzzTests.Iterations / 10), threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O5"));
        using var http = new HttpClient(new SocketsHttpHandler()) { BaseAddress = _server.Address };
        var statuses = new ConcurrentDictionary<string, int>();
        var failures = new ConcurrentQueue<string>();
        await Parallel.ForEachAsync(payloads.ToArray(), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (payload, _) =>
        {
            // One length-prefixed gRPC frame (uncompressed) carrying the random bytes, over HTTP/2 with prior knowledge.
            var frame = new byte[5 + payload.Length];
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
            payload.CopyTo(frame, 5);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/serving.v1.Generation/Generate")
            {
                Version = System.Net.HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new ByteArrayContent(frame),
            };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
            request.Headers.TryAddWithoutValidation("TE", "trailers");
            using var response = await http.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            string status = response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First()
                : response.Headers.TryGetValues("grpc-status", out var h) ? h.First() : $"http {(int)response.StatusCode}";
            statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
            if (status is "2" or "13" or "15" || status.StartsWith("http", StringComparison.Ordinal))
                failures.Enqueue($"grpc-status {status} for {Convert.ToHexString(payload)}");
        });

        output.WriteLine($"{payloads.Count} random messages: " + string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}")));
        Assert.True(failures.IsEmpty, $"{failures.Count} failures:\n{string.Join("\n", failures.Take(10))}");
    }
}
