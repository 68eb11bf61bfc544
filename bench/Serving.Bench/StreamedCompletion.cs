using System.Diagnostics;
using System.Net.Http.Json;

namespace Serving.Bench;

/// <summary>One streamed <c>/v1/completions</c> request, timed by the client's receive times of its SSE token events.</summary>
internal static class StreamedCompletion
{
    /// <summary>Sends <paramref name="body"/> (with <c>stream = true</c>) and reads the stream to its end.</summary>
    /// <returns>Milliseconds from sending to the first and to the last token event, and the number of token events.</returns>
    public static (double FirstMs, double LastMs, int Events) Run(HttpClient http, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(body) };
        var clock = Stopwatch.StartNew();
        using var response = http.Send(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(response.Content.ReadAsStream());
        double first = double.NaN, last = double.NaN;
        int events = 0;
        while (reader.ReadLine() is string line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
                continue;
            last = clock.Elapsed.TotalMilliseconds;
            if (events++ == 0)
                first = last;
        }

        return (first, last, events);
    }
}
