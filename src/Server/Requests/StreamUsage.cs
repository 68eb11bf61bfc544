using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// What a streamed response says of its usage (<c>stream_options</c>): OpenAI's <c>include_usage</c> (a last chunk
/// with the request's usage) and vLLM's <c>continuous_usage_stats</c> (with it, every chunk carries the usage so far).
/// </summary>
internal sealed record StreamUsage(bool AtEnd, bool EveryChunk)
{
    public static StreamUsage Read(JsonFields f)
    {
        var options = f.Object("stream_options");
        bool atEnd = options?.Bool("include_usage") == true;
        bool everyChunk = options?.Bool("continuous_usage_stats") == true;
        if (everyChunk && !atEnd)
            throw JsonFields.Bad("stream_options.continuous_usage_stats", "needs include_usage: true");
        return new StreamUsage(atEnd, everyChunk);
    }
}
