using Microsoft.AspNetCore.Http;
using Serving.Server.Api;

namespace Serving.Server.Tests.Api;

public sealed class RequestBodyTests
{
    [Fact]
    public async Task ReadAsync_ClientResetsMidBody_IsABadRequestNotAServerFault()
    {
        var ex = await Assert.ThrowsAsync<ApiException>(() => RequestBody.ReadAsync(Request(new FailingStream(new IOException("The client reset the request stream."))), default));

        Assert.Equal(400, ex.Status);
        Assert.Contains("could not be read", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadAsync_KestrelRejectsTheBody_KeepsKestrelsStatus()
    {
        var ex = await Assert.ThrowsAsync<ApiException>(() => RequestBody.ReadAsync(
            Request(new FailingStream(new BadHttpRequestException("Request body too large.", 413))), default));

        Assert.Equal(413, ex.Status);
    }

    [Fact]
    public async Task ReadAsync_JsonObject_Parses()
    {
        using var doc = await RequestBody.ReadAsync(Request(new MemoryStream("{\"model\":\"m\"}"u8.ToArray())), default);

        Assert.Equal("m", doc.RootElement.GetProperty("model").GetString());
    }

    private static HttpRequest Request(Stream body)
    {
        var context = new DefaultHttpContext();
        context.Request.Body = body;
        return context.Request;
    }

    private sealed class FailingStream(Exception error) : MemoryStream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromException<int>(error);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromException<int>(error);
    }
}
