using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Damaged adapter files, on disk and in S3: registering or replacing with one answers 422 naming the problem (404 when the
/// weights file is missing altogether), requests for
/// other adapters keep their exact answers meanwhile, and the damaged version never reaches a slot (the name keeps serving
/// its previous version; a new name is not listed). Every damaged copy is read right after the good adapter it was made
/// from; the tail-truncated one (four bytes short) gets a read buffer of the good one's size class (AdapterFileBuffers),
/// so it must be refused from its own bytes, never completed from what a previous read left.
/// </summary>
public sealed class CorruptedAdapterTests(CorruptedAdapterFixture fixture, ITestOutputHelper output) : IClassFixture<CorruptedAdapterFixture>
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string kind in AdapterFileCorruption.Kinds)
        {
            data.Add(kind, "disk");
            data.Add(kind, "s3");
        }

        return data;
    }

    private async Task<(int Status, string Body)> Load(string name, string path)
    {
        using var response = await fixture.Server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = path });
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<string> Greedy(string model, string prompt)
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Server.Http, "/v1/completions", new { model, prompt, max_tokens = 6, temperature = 0, ignore_eos = true });
        Assert.True(status == 200, body.ToJsonString());
        return (string)body["choices"]![0]!["text"]!;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Load_CorruptedAdapter_422OthersUnaffectedNeverInASlot(string kind, string where)
    {
        string id = $"{kind}-{where}";
        string damaged = Path.Combine(fixture.Root, "damaged", id);
        AdapterFileCorruption.Apply(kind, fixture.Good, damaged);
        string path = damaged;
        if (where == "s3")
        {
            await fixture.S3.UploadFolderAsync("adapters", $"damaged/{id}", damaged);
            path = $"s3://adapters/damaged/{id}";
        }

        Assert.Equal(200, (await Load($"victim-{id}", fixture.Good)).Status);
        Assert.Equal(200, (await Load("bystander", fixture.Good)).Status);
        string victimBefore = await Greedy($"victim-{id}", "corrupt");
        string bystander = await Greedy("bystander", "other"), baseline = await Greedy("base", "other");

        // Requests for other adapters run throughout; every one must keep its exact answer.
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var traffic = Enumerable.Range(0, 4).Select(t => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                string model = t % 2 == 0 ? "bystander" : "base";
                try
                {
                    string text = await Greedy(model, "other");
                    if (text != (t % 2 == 0 ? bystander : baseline))
                        failures.Enqueue($"{model} answered differently");
                }
                catch (Exception ex)
                {
                    failures.Enqueue($"{model}: {ex.Message}");
                }
            }
        })).ToArray();

        var (fresh, freshBody) = await Load($"fresh-{id}", path);
        var (replace, replaceBody) = await Load($"victim-{id}", path);
        await stop.CancelAsync();
        await Task.WhenAll(traffic);

        output.WriteLine($"{kind} on {where}: {fresh} {freshBody}");
        // A folder without its weights file is "not found", like a missing folder; every damaged file is "unprocessable".
        int expected = kind == "weights-missing" ? 404 : 422;
        Assert.True(fresh == expected, $"{kind} on {where}: new registration answered {fresh} {freshBody}");
        Assert.True(replace == expected, $"{kind} on {where}: replacement answered {replace} {replaceBody}");
        string message = (string)JsonNode.Parse(freshBody)!["error"]!["message"]!;
        Assert.False(string.IsNullOrWhiteSpace(message));
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)));
        Assert.Equal(victimBefore, await Greedy($"victim-{id}", "corrupt"));
        using var models = await fixture.Server.Http.GetAsync("/v1/models");
        Assert.DoesNotContain($"fresh-{id}", await models.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
