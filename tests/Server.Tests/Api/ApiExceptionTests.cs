using Serving.Runtime;
using Serving.Server.Api;

namespace Serving.Server.Tests.Api;

/// <summary>The one place the runtime's typed errors become HTTP statuses (and, through them, gRPC codes).</summary>
public sealed class ApiExceptionTests
{
    [Theory]
    [InlineData(RequestFailure.Invalid, 400, "invalid_request_error")]
    [InlineData(RequestFailure.Forbidden, 403, "permission_error")]
    [InlineData(RequestFailure.NotFound, 404, "not_found_error")]
    [InlineData(RequestFailure.Unprocessable, 422, "unprocessable_entity_error")]
    [InlineData(RequestFailure.Overloaded, 429, "rate_limit_error")]
    [InlineData(RequestFailure.Unavailable, 503, "service_unavailable_error")]
    [InlineData(RequestFailure.TimedOut, 504, "server_error")]
    [InlineData(RequestFailure.Failed, 500, "server_error")]
    public void Of_RuntimeFailure_MapsToItsStatusKeepingMessageAndParam(RequestFailure failure, int status, string type)
    {
        var api = ApiException.Of(new RequestFailedException(failure, "what went wrong", "model"));

        Assert.NotNull(api);
        Assert.Equal(status, api.Status);
        Assert.Equal(type, api.Type);
        Assert.Equal("what went wrong", api.Message);
        Assert.Equal("model", api.Param);
    }

    [Fact]
    public void Of_OtherException_IsNull()
    {
        Assert.Null(ApiException.Of(new InvalidOperationException("a fault of the server's own")));
    }

    [Fact]
    public void Of_ApiException_IsItself()
    {
        var original = new ApiException(413, "too large");

        Assert.Same(original, ApiException.Of(original));
    }
}
