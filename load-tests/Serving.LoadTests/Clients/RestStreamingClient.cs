using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.LoadTests.Planning;

namespace Serving.LoadTests.Clients;

/// <summary>
/// OpenAI completions over SSE (<c>stream: true</c>, <c>stream_options.include_usage</c>), prompts as token ids,
/// greedy, <c>ignore_eos</c> so every request produces exactly its planned output length. The first chunk carrying
/// text marks TTFT; the usage chunk gives the token count; <c>return_token_ids</c> gives the generated ids.
/// </summary>
internal sealed class RestStreamingClient : ILoadClient
{
    private readonly HttpClient _http;
    private readonly TimeSpan _timeout;
    private readonly IReadOnlyList<string> _autoCandidates;

    public RestStreamingClient(Uri target, string? apiKey, TimeSpan timeout, IReadOnlyList<string> autoCandidates)
    {
        _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = target,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        if (apiKey is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        _timeout = timeout;
        _autoCandidates = autoCandidates;
    }

    public async Task<RequestOutcome> SendAsync(PlannedRequest request, double startedAtSeconds, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        var clock = Stopwatch.StartNew();
        double first = double.NaN, last = double.NaN;
        int chunks = 0, tokens = 0;
        var ids = new List<int>();
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(Body(request), Encoding.UTF8, "application/json") };
            if (request.ApiKey is not null)
                message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", request.ApiKey);
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                string error = await response.Content.ReadAsStringAsync(timeout.Token);
                return new RequestOutcome(request, ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture), startedAtSeconds,
                    double.NaN, double.NaN, clock.Elapsed.TotalMilliseconds, 0, Shorten(error));
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
            while (await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (!line.StartsWith("data: {", StringComparison.Ordinal))
                    continue;
                var chunk = JsonNode.Parse(line.AsSpan(6).ToString())!;
                if (chunk["error"] is { } streamError)
                    return new RequestOutcome(request, "stream_error", startedAtSeconds, first, double.NaN, clock.Elapsed.TotalMilliseconds, tokens, Shorten(streamError.ToJsonString()));
                if (chunk["usage"] is JsonObject usage)
                    tokens = usage["completion_tokens"]!.GetValue<int>();
                if (chunk["choices"] is JsonArray { Count: > 0 } choices)
                {
                    if (choices[0]?["token_ids"] is JsonArray chunkIds)
                        ids.AddRange(chunkIds.Select(t => t!.GetValue<int>()));
                    last = clock.Elapsed.TotalMilliseconds;
                    if (chunks++ == 0)
                        first = last;
                }
            }

            tokens = tokens == 0 ? chunks : tokens;
            double tpot = tokens > 1 ? (last - first) / (tokens - 1) : double.NaN;
            return new RequestOutcome(request, "ok", startedAtSeconds, first, tpot, clock.Elapsed.TotalMilliseconds, tokens, null, ids);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new RequestOutcome(request, "timeout", startedAtSeconds, first, double.NaN, clock.Elapsed.TotalMilliseconds, tokens, $"no answer within {_timeout.TotalSeconds:F0} s");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException)
        {
            return new RequestOutcome(request, "connection", startedAtSeconds, first, double.NaN, clock.Elapsed.TotalMilliseconds, tokens, Shorten(ex.Message));
        }
    }

    private string Body(PlannedRequest request)
    {
        var body = new JsonObject
        {
            ["model"] = request.Model,
            ["prompt"] = new JsonArray([.. request.PromptTokenIds.Select(t => (JsonNode)t)]),
            ["max_tokens"] = request.MaxTokens,
            ["temperature"] = 0,
            ["ignore_eos"] = true,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["return_token_ids"] = true,
        };
        if (request.Kind == RequestKind.Mixture)
            body["adapters"] = new JsonArray([.. request.Mixture.Select(m => (JsonNode)new JsonObject { ["id"] = m.Id, ["weight"] = m.Weight })]);
        if (request.Kind == RequestKind.Auto && _autoCandidates.Count > 0)
            body["routing"] = new JsonObject { ["candidates"] = new JsonArray([.. _autoCandidates.Select(c => (JsonNode)c)]) };
        return body.ToJsonString();
    }

    internal static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "…";

    public void Dispose() => _http.Dispose();
}
