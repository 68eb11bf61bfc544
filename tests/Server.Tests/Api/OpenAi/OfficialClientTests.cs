using System.ClientModel;
using OpenAI;
using OpenAI.Chat;
using Serving.Server.Tests.Support;
using Serving.Contracts.Generation;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>The official OpenAI .NET library, unchanged, against the server: models, chat, streamed chat, errors.</summary>
public sealed class OfficialClientTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private OpenAIClient Client => new(new ApiKeyCredential("unused-in-open-mode"), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });

    [Fact]
    public async Task Models_ListIncludesBaseAndAdapters()
    {
        var models = await Client.GetOpenAIModelClient().GetModelsAsync();

        Assert.Contains(models.Value, m => m.Id == "serving-demo-tiny");
        Assert.Contains(models.Value, m => m.Id == "demo-all-r8");
    }

    [Fact]
    public async Task Chat_WithAdapter_AnswersAndNamesTheAdapter()
    {
        var chat = Client.GetChatClient("demo-all-r8");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0 };

        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Hello there")], options)).Value;

        Assert.Equal("demo-all-r8", completion.Model);
        Assert.Equal(6, completion.Usage.OutputTokenCount);
        Assert.NotNull(completion.Content[0].Text);
    }

    [Fact]
    public async Task ChatStreaming_SameTextAsUnary()
    {
        var chat = Client.GetChatClient("demo-mlp-r4");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 };
        var unary = (await chat.CompleteChatAsync([new UserChatMessage("Stream this")], options)).Value.Content[0].Text;

        var streamed = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Stream this")], options))
        {
            foreach (var part in update.ContentUpdate)
                streamed.Append(part.Text);
            finish ??= update.FinishReason;
        }

        Assert.Equal(unary, streamed.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
    }

    [Fact]
    public async Task Chat_UnknownModel_ClientSeesA404()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Client.GetChatClient("no-such-model").CompleteChatAsync([new UserChatMessage("x")]));

        Assert.Equal(404, ex.Status);
        Assert.Contains("no-such-model", ex.Message);
    }
}
