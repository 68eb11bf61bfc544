using System.Globalization;
using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// The stored side of OpenAI's Responses API, for the caller's tenant only (<see cref="ResponseStore"/>):
/// <c>GET /v1/responses/{id}</c> (the response as answered), <c>DELETE /v1/responses/{id}</c>, and
/// <c>GET /v1/responses/{id}/input_items</c> (the items that went into it, earlier responses' included, paged as
/// OpenAI's lists are: <c>order</c>, <c>limit</c>, <c>after</c>). Another tenant's response is a 404, worded as one that
/// never existed.
/// </summary>
internal sealed class StoredResponsesEndpoint(ResponseStore store)
{
    public Task GetAsync(HttpContext ctx, string id)
    {
        RefuseQuery(ctx, "stream", "streaming a stored response again is not supported: read it whole");
        RefuseQuery(ctx, "starting_after", "streaming a stored response again is not supported: read it whole");
        RefuseQuery(ctx, "include", "'include' is not supported");
        return Results.Json(Stored(ctx, id).ResponseObject()).ExecuteAsync(ctx);
    }

    public Task DeleteAsync(HttpContext ctx, string id)
    {
        if (!store.Delete(Security.AuthenticationMiddleware.CallerOf(ctx).Tenant, id))
            throw NotFound(id);
        return Results.Json(new JsonObject { ["id"] = id, ["object"] = "response", ["deleted"] = true }).ExecuteAsync(ctx);
    }

    public Task InputItemsAsync(HttpContext ctx, string id)
    {
        var query = ctx.Request.Query;
        RefuseQuery(ctx, "include", "'include' is not supported");
        string order = query["order"].ToString() is { Length: > 0 } o ? o : "desc";
        if (order is not ("asc" or "desc"))
            throw ApiException.BadRequest($"'order' must be asc or desc, got '{ResponsesEndpoint.Shown(order)}'", "order");
        int limit = 20;
        if (query["limit"].ToString() is { Length: > 0 } l && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 100))
            throw ApiException.BadRequest($"'limit' must be a whole number from 1 to 100, got '{ResponsesEndpoint.Shown(l)}'", "limit");

        var items = Stored(ctx, id).Input.Select(i => (JsonObject)JsonNode.Parse(i)!).ToList();
        if (order == "desc")
            items.Reverse();
        int start = 0;
        if (query["after"].ToString() is { Length: > 0 } after)
        {
            int at = items.FindIndex(i => (string?)i["id"] == after);
            start = at >= 0 ? at + 1 : throw ApiException.BadRequest($"'after' names no input item of this response: '{ResponsesEndpoint.Shown(after)}'", "after");
        }

        var page = items.Skip(start).Take(limit).ToList();
        return Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray([.. page]),
            ["first_id"] = page.Count > 0 ? (string?)page[0]["id"] : null,
            ["last_id"] = page.Count > 0 ? (string?)page[^1]["id"] : null,
            ["has_more"] = start + page.Count < items.Count,
        }).ExecuteAsync(ctx);
    }

    private StoredResponse Stored(HttpContext ctx, string id) =>
        store.Find(Security.AuthenticationMiddleware.CallerOf(ctx).Tenant, id) ?? throw NotFound(id);

    private static ApiException NotFound(string id) =>
        new(404, $"no stored response '{ResponsesEndpoint.Shown(id)}': it was never made under this key, was deleted, or has expired or been pushed out");

    private static void RefuseQuery(HttpContext ctx, string name, string why)
    {
        if (ctx.Request.Query.TryGetValue(name, out var value) && !(name == "stream" && value.ToString() == "false"))
            throw ApiException.BadRequest(why, name);
    }
}
