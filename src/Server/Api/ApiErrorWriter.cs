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

    public static IResult Result(ApiException ex) => Results.Json(Body(ex), statusCode: ex.Status);
}
