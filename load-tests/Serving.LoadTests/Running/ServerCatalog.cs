using System.Net.Http.Headers;
using System.Text.Json.Nodes;

namespace Serving.LoadTests.Running;

/// <summary>What the target serves, from <c>GET /v1/models</c>: the base model id and the adapter ids (entries with a parent).</summary>
internal sealed record ServerCatalog(string BaseModel, IReadOnlyList<string> Adapters)
{
    public static async Task<ServerCatalog> ReadAsync(HttpClient http, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync("/v1/models", cancellationToken);
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new Scenarios.ScenarioException($"{http.BaseAddress}v1/models answered {(int)response.StatusCode}: {Clients.RestStreamingClient.Shorten(body)}");
        var data = JsonNode.Parse(body)?["data"]?.AsArray() ?? throw new Scenarios.ScenarioException($"{http.BaseAddress}v1/models: no data list");
        string? baseModel = null;
        var adapters = new List<string>();
        foreach (var model in data)
        {
            string id = model!["id"]!.GetValue<string>();
            if (model["parent"] is null)
                baseModel ??= id;
            else
                adapters.Add(id);
        }

        return new ServerCatalog(baseModel ?? throw new Scenarios.ScenarioException($"{http.BaseAddress}v1/models lists no base model"),
            [.. adapters.Order(StringComparer.Ordinal)]);
    }

    public static HttpClient Http(Uri target, string? apiKey)
    {
        var http = new HttpClient { BaseAddress = target, Timeout = TimeSpan.FromSeconds(30) };
        if (apiKey is not null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return http;
    }
}
