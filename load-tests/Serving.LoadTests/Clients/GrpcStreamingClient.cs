using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Serving.LoadTests.Planning;
using Serving.V1;

namespace Serving.LoadTests.Clients;

/// <summary>
/// <c>serving.v1.Generation/GenerateStream</c> over HTTP/2 (cleartext h2c on an http:// target), the same requests as
/// the REST client: token-id prompts, greedy, <c>ignore_eos</c>. Status codes are gRPC's names.
/// </summary>
internal sealed class GrpcStreamingClient : ILoadClient
{
    private readonly GrpcChannel _channel;
    private readonly Generation.GenerationClient _client;
    private readonly Metadata _headers = [];
    private readonly TimeSpan _timeout;
    private readonly IReadOnlyList<string> _autoCandidates;

    public GrpcStreamingClient(Uri target, string? apiKey, TimeSpan timeout, IReadOnlyList<string> autoCandidates)
    {
        _channel = GrpcChannel.ForAddress(target, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
            MaxReceiveMessageSize = 16 << 20,
        });
        _client = new Generation.GenerationClient(_channel);
        if (apiKey is not null)
            _headers.Add("authorization", $"Bearer {apiKey}");
        _timeout = timeout;
        _autoCandidates = autoCandidates;
    }

    public async Task<RequestOutcome> SendAsync(PlannedRequest request, double startedAtSeconds, CancellationToken cancellationToken)
    {
        var message = new GenerateRequest { Model = request.Model, MaxTokens = request.MaxTokens, Temperature = 0, IgnoreEos = true };
        message.PromptTokenIds.Add(request.PromptTokenIds);
        if (request.Kind == RequestKind.Mixture)
            message.Adapters.Add(request.Mixture.Select(m => new AdapterWeight { Id = m.Id, Weight = (float)m.Weight }));
        if (request.Kind == RequestKind.Auto)
            message.RoutingCandidates.Add(_autoCandidates);
        var clock = Stopwatch.StartNew();
        double first = double.NaN, last = double.NaN;
        int tokens = 0;
        var ids = new List<int>();
        var headers = request.ApiKey is null ? _headers : new Metadata { { "authorization", $"Bearer {request.ApiKey}" } };
        try
        {
            using var call = _client.GenerateStream(message, headers, DateTime.UtcNow + _timeout, cancellationToken);
            await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancellationToken))
            {
                if (chunk.TokenIds.Count == 0)
                    continue;
                last = clock.Elapsed.TotalMilliseconds;
                if (tokens == 0)
                    first = last;
                tokens += chunk.TokenIds.Count;
                ids.AddRange(chunk.TokenIds);
            }

            double tpot = tokens > 1 ? (last - first) / (tokens - 1) : double.NaN;
            return new RequestOutcome(request, "ok", startedAtSeconds, first, tpot, clock.Elapsed.TotalMilliseconds, tokens, null, ids);
        }
        catch (RpcException ex) when (ex.StatusCode != StatusCode.Cancelled || !cancellationToken.IsCancellationRequested)
        {
            string status = ex.StatusCode switch
            {
                StatusCode.DeadlineExceeded => "timeout",
                var code => code.ToString(),
            };
            return new RequestOutcome(request, status, startedAtSeconds, first, double.NaN, clock.Elapsed.TotalMilliseconds, tokens, RestStreamingClient.Shorten(ex.Status.Detail));
        }
    }

    public void Dispose() => _channel.Dispose();
}
