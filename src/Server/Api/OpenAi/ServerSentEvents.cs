using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// Writes an OpenAI-style SSE stream: <c>data: {json}</c> events (the Responses API names each: <c>event: type</c>), then,
/// for chat and completions, <c>data: [DONE]</c>.
/// </summary>
internal sealed class ServerSentEvents(HttpResponse response)
{
    private readonly SemaphoreSlim _lock = new(1, 1);

    public void Start()
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <param name="data">The event's JSON.</param>
    /// <param name="ct">Stops the write.</param>
    /// <param name="eventName">The Responses API's event type; null for chat and completions.</param>
    /// <param name="completeInTurn">
    /// Finishes <paramref name="data"/> once this event's turn to be written has come: what it says of the stream so far
    /// (continuous usage) must be taken in the order the events go out, as choices streamed side by side race to send.
    /// </param>
    public async Task SendAsync(JsonNode data, CancellationToken ct, string? eventName = null, Action<JsonNode>? completeInTurn = null)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            completeInTurn?.Invoke(data);
            await response.WriteAsync((eventName is null ? "" : "event: " + eventName + "\n") + "data: " + data.ToJsonString() + "\n\n", ct).ConfigureAwait(false);
            await response.Body.FlushAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task DoneAsync(CancellationToken ct)
    {
        await response.WriteAsync("data: [DONE]\n\n", ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }
}
