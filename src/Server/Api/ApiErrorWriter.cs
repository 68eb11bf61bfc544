using System.Text.Json.Nodes;

namespace Serving.Server.Api;

internal static class ApiErrorWriter
{
    public static JsonObject Body(ApiException ex) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = ex.Message,
            ["type"] = ex.Type,
            ["param"] = ex.Param,
            ["code"] = ex.Status.ToString(System.Globalization.CultureInfo.InvariantCulture),
        },
    };

    public static IResult Result(ApiException ex)
    {
        var json = Results.Json(Body(ex), statusCode: ex.Status);
        return ex.RetryAfterSeconds is not int seconds ? json : new RetryAfterResult(json, seconds);
    }
}
