using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.Tests.Support;

internal static class HttpJson
{
    public static async Task<(int Status, JsonNode Body)> PostAsync(HttpClient http, string path, object body)
    {
        using var response = await http.PostAsJsonAsync(path, body);
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonNode.Parse(text)!);
    }

    /// <summary>Posts <paramref name="body"/> as JSON with <c>Authorization: Bearer</c> <paramref name="key"/>; the answer as text.</summary>
    public static async Task<(int Status, string Body)> PostWithKeyAsync(HttpClient http, string key, string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public static async Task<(int Status, JsonNode Body)> PostRawAsync(HttpClient http, string path, string body)
    {
        using var response = await http.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        return ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    /// <summary>
    /// Posts the smallest completions or chat body for <paramref name="path"/> — <paramref name="model"/>, a
    /// <c>max_tokens</c> of <paramref name="maxTokens"/>, the prompt "hi" or one user message "hi" — with the fields of the
    /// JSON object <paramref name="extra"/> on top.
    /// </summary>
    public static Task<(int Status, JsonNode Body)> PostSmallestAsync(HttpClient http, string path, string model, string extra, int maxTokens = 2)
    {
        var body = JsonNode.Parse(extra)!.AsObject();
        body["model"] = model;
        body["max_tokens"] = maxTokens;
        if (path.Contains("chat", StringComparison.Ordinal))
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
        else
            body["prompt"] = "hi";
        return PostRawAsync(http, path, body.ToJsonString());
    }

    /// <summary>Asserts a 400 whose error names <paramref name="param"/> and whose message says <paramref name="problem"/>.</summary>
    public static void AssertBadRequest(int status, JsonNode answer, string param, string problem)
    {
        Assert.True(status == 400, answer.ToJsonString());
        Assert.Equal(param, (string?)answer["error"]?["param"]);
        Assert.Contains(problem, (string?)answer["error"]?["message"] ?? "", StringComparison.Ordinal);
    }

    /// <summary>A greedy chat body: <paramref name="model"/>, one user message, <paramref name="maxTokens"/>, then <paramref name="extra"/>'s fields.</summary>
    public static JsonObject GreedyChat(string model, string question, int maxTokens, JsonObject extra)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
        };
        foreach (var (key, value) in extra)
            body[key] = value?.DeepClone();
        return body;
    }

    /// <summary>Posts a chat body that must succeed; its first choice.</summary>
    public static async Task<JsonNode> FirstChatChoiceAsync(HttpClient http, JsonObject body)
    {
        var (status, answer) = await PostRawAsync(http, "/v1/chat/completions", body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        return answer["choices"]![0]!;
    }

    /// <summary>Posts with stream=true and returns the data payloads of the SSE events in order.</summary>
    public static async Task<List<string>> StreamAsync(HttpClient http, string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        while (await reader.ReadLineAsync() is string line)
            if (line.StartsWith("data: ", StringComparison.Ordinal))
                events.Add(line["data: ".Length..]);
        return events;
    }
}
