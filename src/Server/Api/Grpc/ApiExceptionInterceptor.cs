using Grpc.Core;
using Grpc.Core.Interceptors;
using Serving.Server.Api;

namespace Serving.Server.Api.Grpc;

/// <summary>
/// Turns the server's <see cref="ApiException"/>s into gRPC statuses with the same meaning (docs/API.md's error table),
/// so services stay thin: validate → enqueue → stream, and throw as the REST endpoints do.
/// </summary>
internal sealed class ApiExceptionInterceptor : Interceptor
{
    public static StatusCode CodeFor(int httpStatus) => httpStatus switch
    {
        400 => StatusCode.InvalidArgument,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.NotFound,
        422 => StatusCode.FailedPrecondition,
        429 => StatusCode.ResourceExhausted,
        503 => StatusCode.Unavailable,
        504 => StatusCode.DeadlineExceeded,
        _ => StatusCode.Internal,
    };

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception error) when (ApiException.Of(error) is ApiException ex)
        {
            throw ToRpc(ex);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception error) when (ApiException.Of(error) is ApiException ex)
        {
            throw ToRpc(ex);
        }
    }

    private static RpcException ToRpc(ApiException ex) =>
        new(new Status(CodeFor(ex.Status), ex.Param is null ? ex.Message : $"{ex.Param}: {ex.Message}"));
}
