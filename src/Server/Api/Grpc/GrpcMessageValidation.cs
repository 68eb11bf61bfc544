using System.Buffers.Binary;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Serving.Server.Api.Grpc;

/// <summary>
/// Answers a gRPC request whose message bytes are not a valid protobuf encoding of the method's input type with
/// INVALID_ARGUMENT naming the type, before the gRPC handler sees it. grpc-dotnet reports such a message as UNKNOWN
/// ("Exception was thrown by handler"), which reads as a server fault; our contract gives bad input the same meaning on
/// REST (400) and gRPC (INVALID_ARGUMENT). Only unary and server-streaming methods are checked (their request is exactly
/// one message); compressed frames are left to grpc-dotnet. A body over the receive limit gets RESOURCE_EXHAUSTED, as
/// grpc-dotnet would answer, without being read further.
/// </summary>
internal sealed class GrpcMessageValidation(IReadOnlyDictionary<string, MessageDescriptor> inputs, int maxMessageBytes)
{
    /// <summary>grpc-dotnet's default receive limit.</summary>
    public const int DefaultMaxMessageBytes = 4 << 20;

    /// <summary>Validation for every unary and server-streaming method of the services in <paramref name="files"/>.</summary>
    public static GrpcMessageValidation For(params FileDescriptor[] files) => new(
        files.SelectMany(f => f.Services).SelectMany(s => s.Methods)
            .Where(m => !m.IsClientStreaming)
            .ToDictionary(m => $"/{m.Service.FullName}/{m.Name}", m => m.InputType, StringComparer.Ordinal),
        DefaultMaxMessageBytes);

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        if (!HttpMethods.IsPost(request.Method) || request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) != true
            || request.ContentType.StartsWith("application/grpc-web", StringComparison.Ordinal)
            || !inputs.TryGetValue(request.Path.Value ?? "", out var input))
        {
            await next(context);
            return;
        }

        var body = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                body.Write(buffer, 0, read);
                if (body.Length > maxMessageBytes + 5L)
                {
                    Reject(context, 8, $"the request message exceeds {maxMessageBytes} bytes");
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The client reset its stream while sending the message. Kestrel fails the body read with an IOException
            // before it cancels RequestAborted (that is scheduled on the thread pool), so the exception handler would
            // log the client's departure as a server error; nobody is left to answer.
            context.Abort();
            return;
        }

        if (Problem(body.GetBuffer().AsSpan(0, (int)body.Length), input) is { } problem)
        {
            Reject(context, 3, problem);
            return;
        }

        body.Position = 0;
        request.Body = body;
        await next(context);
    }

    /// <summary>A trailers-only response: the status travels in the headers of the only HEADERS frame.</summary>
    private static void Reject(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
    }

    /// <summary>The problem with the single uncompressed frame in <paramref name="frames"/>, or null to let gRPC go on.</summary>
    private static string? Problem(ReadOnlySpan<byte> frames, MessageDescriptor input)
    {
        if (frames.Length < 5 || frames[0] != 0)
            return null;
        uint length = BinaryPrimitives.ReadUInt32BigEndian(frames[1..]);
        if (length != frames.Length - 5)
            return null;                                 // incomplete or several frames: grpc-dotnet's own framing errors apply
        try
        {
            input.Parser.ParseFrom(frames[5..]);
            return null;
        }
        catch (InvalidProtocolBufferException ex)
        {
            return $"the request message is not a valid {input.FullName}: {ex.Message}";
        }
    }
}
