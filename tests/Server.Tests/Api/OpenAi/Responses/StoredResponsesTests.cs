#pragma warning disable OPENAI001                      // the official library marks its Responses client experimental
using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI.Responses;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi.Responses;

/// <summary>
/// Stored responses through the real server and the official OpenAI library: a response continued with
/// <c>previous_response_id</c> is the response to the whole conversation sent again; <c>GET</c>, <c>DELETE</c> and the
/// input-item list of <c>/v1/responses/{id}</c>; <c>store: false</c> keeps nothing; streamed responses are kept too.
/// </summary>
public sealed class StoredResponsesTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>
{
    private ResponsesClient Responses => new(new ApiKeyCredential("unused-in-open-mode"), new ResponsesClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });

    private static CreateResponseOptions Greedy(string model, params ResponseItem[] input) =>
        new(model, input) { Instructions = "Answer briefly.", MaxOutputTokenCount = 8, Temperature = 0 };

    [Fact]
    public async Task CreateResponse_PreviousResponseId_SameAsTheWholeConversationSentAgain()
    {
        string model = StructuredOutputServerFixture.Adapters[2];
        var first = (await Responses.CreateResponseAsync(Greedy(model, ResponseItem.CreateUserMessageItem("Name a city.")))).Value;
        var options = Greedy(model, ResponseItem.CreateUserMessageItem("And another?"));
        options.PreviousResponseId = first.Id;
        var continued = (await Responses.CreateResponseAsync(options)).Value;

        var again = Greedy(model, ResponseItem.CreateUserMessageItem("Name a city."), ResponseItem.CreateAssistantMessageItem(first.GetOutputText()),
            ResponseItem.CreateUserMessageItem("And another?"));
        again.StoredOutputEnabled = false;
        var whole = (await Responses.CreateResponseAsync(again)).Value;

        Assert.Equal(whole.GetOutputText(), continued.GetOutputText());
        Assert.Equal(whole.Usage.InputTokenCount, continued.Usage.InputTokenCount);
        Assert.True(continued.Usage.InputTokenCount > first.Usage.InputTokenCount + first.Usage.OutputTokenCount);
        Assert.Equal(first.Id, continued.PreviousResponseId);
    }

    [Fact]
    public async Task GetAndDeleteResponse_OfficialClient_StoredAsAnsweredThenGone()
    {
        var first = (await Responses.CreateResponseAsync(Greedy("base", ResponseItem.CreateUserMessageItem("Say hello.")))).Value;
        var options = Greedy("base", ResponseItem.CreateUserMessageItem("Once more."));
        options.PreviousResponseId = first.Id;
        var second = (await Responses.CreateResponseAsync(options)).Value;

        var read = (await Responses.GetResponseAsync(second.Id)).Value;
        Assert.Equal(second.GetOutputText(), read.GetOutputText());
        Assert.Equal(second.Usage.InputTokenCount, read.Usage.InputTokenCount);
        Assert.Equal(first.Id, read.PreviousResponseId);

        // Newest first: this response's input, the first one's output, the first one's input.
        var items = new List<ResponseItem>();
        await foreach (var item in Responses.GetResponseInputItemsAsync(second.Id))
            items.Add(item);
        Assert.Equal(3, items.Count);
        Assert.Equal("Once more.", Assert.IsAssignableFrom<MessageResponseItem>(items[0]).Content[0].Text);
        Assert.Equal(first.GetOutputText(), Assert.IsAssignableFrom<MessageResponseItem>(items[1]).Content[0].Text);
        Assert.Equal("Say hello.", Assert.IsAssignableFrom<MessageResponseItem>(items[2]).Content[0].Text);
        Assert.Equal(((MessageResponseItem)first.OutputItems[0]).Id, items[1].Id);

        var deleted = (await Responses.DeleteResponseAsync(second.Id)).Value;
        Assert.True(deleted.Deleted);
        var gone = await Assert.ThrowsAsync<ClientResultException>(() => Responses.GetResponseAsync(second.Id));
        Assert.Equal(404, gone.Status);
        Assert.Equal(first.GetOutputText(), (await Responses.GetResponseAsync(first.Id)).Value.GetOutputText());
    }

    [Fact]
    public async Task Responses_StoreFalse_NothingKept()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject { ["model"] = "base", ["input"] = "x", ["max_output_tokens"] = 2, ["store"] = false });
        Assert.True(status == 200, body.ToJsonString());
        Assert.False((bool)body["store"]!);
        string id = (string)body["id"]!;

        using var get = await fixture.Http.GetAsync($"/v1/responses/{id}");
        Assert.Equal(404, (int)get.StatusCode);
        Assert.Contains($"no stored response '{id}'", await get.Content.ReadAsStringAsync());
        var (again, refused) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject { ["model"] = "base", ["input"] = "y", ["previous_response_id"] = id });
        HttpJson.AssertBadRequest(again, refused, "previous_response_id", $"no stored response '{id}'");
    }

    [Fact]
    public async Task ResponsesStreaming_Stored_ReadBackAsTheFinalEventSaidAndContinued()
    {
        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/responses", new JsonObject
        {
            ["model"] = "base", ["input"] = "Stream a sentence.", ["max_output_tokens"] = 6, ["temperature"] = 0, ["stream"] = true,
        });
        var final = events.Where(e => e != "[DONE]").Select(e => JsonNode.Parse(e)!)
            .Last(e => (string)e["type"]! is "response.completed" or "response.incomplete")["response"]!;
        Assert.True((bool)final["store"]!);

        using var get = await fixture.Http.GetAsync($"/v1/responses/{(string)final["id"]!}");
        var read = JsonNode.Parse(await get.Content.ReadAsStringAsync())!;
        Assert.True(get.IsSuccessStatusCode, read.ToJsonString());
        Assert.Equal(final["output"]!.ToJsonString(), read["output"]!.ToJsonString());

        var (status, next) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject
        {
            ["model"] = "base", ["input"] = "Go on.", ["max_output_tokens"] = 2, ["previous_response_id"] = final["id"]!.DeepClone(),
        });
        Assert.True(status == 200, next.ToJsonString());
        Assert.Equal((string)final["id"]!, (string)next["previous_response_id"]!);
    }

    [Fact]
    public async Task InputItems_Paged_AscendingAfterAndLimitAsOpenAiLists()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject
        {
            ["model"] = "base", ["max_output_tokens"] = 2,
            ["input"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "one" }, new JsonObject { ["role"] = "assistant", ["content"] = "two" },
                new JsonObject { ["type"] = "message", ["id"] = "msg_mine", ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "input_text", ["text"] = "three" }) }),
        });
        Assert.True(status == 200, body.ToJsonString());
        string id = (string)body["id"]!;

        var page = await Get($"/v1/responses/{id}/input_items?order=asc&limit=2");
        Assert.Equal(2, page["data"]!.AsArray().Count);
        Assert.True((bool)page["has_more"]!);
        Assert.Equal("user", (string)page["data"]![0]!["role"]!);
        string last = (string)page["last_id"]!;
        var rest = await Get($"/v1/responses/{id}/input_items?order=asc&after={last}");
        Assert.False((bool)rest["has_more"]!);
        Assert.Equal("msg_mine", (string)rest["first_id"]!);
        Assert.Equal("three", (string)rest["data"]![0]!["content"]![0]!["text"]!);

        using var bad = await fixture.Http.GetAsync($"/v1/responses/{id}/input_items?limit=101");
        HttpJson.AssertBadRequest((int)bad.StatusCode, JsonNode.Parse(await bad.Content.ReadAsStringAsync())!, "limit", "1 to 100");
        using var stream = await fixture.Http.GetAsync($"/v1/responses/{id}?stream=true");
        HttpJson.AssertBadRequest((int)stream.StatusCode, JsonNode.Parse(await stream.Content.ReadAsStringAsync())!, "stream", "read it whole");
    }

    /// <summary>Found by the REST fuzzer: an input item repeating a key (last one counts, as everywhere) was a 500 when the response was kept.</summary>
    [Fact]
    public async Task Responses_ItemRepeatingAKey_LastOneCountsAndKept()
    {
        var (status, body) = await HttpJson.PostRawAsync(fixture.Http, "/v1/responses",
            """{"model": "base", "max_output_tokens": 2, "input": [{"role": {"x": [1]}, "role": "user", "content": "hi", "text": {"a": 1, "a": 2}}]}""");
        Assert.True(status == 200, body.ToJsonString());

        var items = await Get($"/v1/responses/{(string)body["id"]!}/input_items");
        var item = items["data"]![0]!;
        Assert.Equal("user", (string)item["role"]!);
        Assert.Equal(2, (int)item["text"]!["a"]!);
    }

    private async Task<JsonNode> Get(string path)
    {
        using var response = await fixture.Http.GetAsync(path);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
        return body;
    }
}
