using System.Net.Http.Json;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Observability;

public sealed class RequestIdTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    [Theory]
    [InlineData("client-id-42", "client-id-42")]
    [InlineData("not ok; spaces", null)]
    [InlineData(null, null)]
    public async Task Completion_RequestId_EchoedOrAssigned(string? sent, string? expected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(new { model = "serving-demo-tiny", prompt = "id", max_tokens = 1 }) };
        if (sent is not null)
            request.Headers.TryAddWithoutValidation("X-Request-Id", sent);

        using var response = await fixture.Http.SendAsync(request);

        string id = Assert.Single(response.Headers.GetValues("X-Request-Id"));
        if (expected is not null)
            Assert.Equal(expected, id);
        else
            Assert.True(id.Length > 0 && id != sent, id);
    }
}
