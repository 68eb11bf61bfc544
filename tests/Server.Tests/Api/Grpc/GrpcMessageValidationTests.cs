using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Serving.Server.Api.Grpc;

namespace Serving.Server.Tests.Api.Grpc;

public sealed class GrpcMessageValidationTests
{
    [Fact]
    public async Task InvokeAsync_ClientResetsWhileSending_AbortsQuietlyWithoutCallingNext()
    {
        var (context, lifetime) = GrpcRequest(new ResetStream());
        bool nextCalled = false;

        await GrpcMessageValidation.For(V1.GenerationReflection.Descriptor).InvokeAsync(context, _ =>
        {
            nextCalled = true;
            return Task.CompletedTask;
        });

        Assert.False(nextCalled);
        Assert.True(lifetime.Aborted);
    }

    [Fact]
    public async Task InvokeAsync_ValidMessage_PassesTheSameBytesOn()
    {
        byte[] message = new V1.GenerateRequest { Model = "m", Prompt = "hi" }.ToByteArray();
        byte[] frame = [0, 0, 0, 0, (byte)message.Length, .. message];
        var (context, lifetime) = GrpcRequest(new MemoryStream(frame));
        byte[]? seen = null;

        await GrpcMessageValidation.For(V1.GenerationReflection.Descriptor).InvokeAsync(context, async c =>
        {
            using var copy = new MemoryStream();
            await c.Request.Body.CopyToAsync(copy);
            seen = copy.ToArray();
        });

        Assert.Equal(frame, seen);
        Assert.False(lifetime.Aborted);
    }

    private static (HttpContext Context, RecordingLifetime Lifetime) GrpcRequest(Stream body)
    {
        var context = new DefaultHttpContext();
        var lifetime = new RecordingLifetime();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        context.Request.Method = "POST";
        context.Request.ContentType = "application/grpc";
        context.Request.Path = $"/{V1.GenerationReflection.Descriptor.Services[0].FullName}/GenerateStream";
        context.Request.Body = body;
        return (context, lifetime);
    }

    private sealed class RecordingLifetime : IHttpRequestLifetimeFeature
    {
        public CancellationToken RequestAborted { get; set; }

        public bool Aborted { get; private set; }

        public void Abort() => Aborted = true;
    }

    /// <summary>What Kestrel's request body does after an HTTP/2 RST_STREAM from the client.</summary>
    private sealed class ResetStream : MemoryStream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromException<int>(new IOException("The client reset the request stream."));
    }
}
