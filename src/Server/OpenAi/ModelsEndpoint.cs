using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Server.Hosting;

namespace Serving.Server.OpenAi;

/// <summary><c>GET /v1/models</c>: the base model (adapters join the list with the adapter store).</summary>
internal sealed class ModelsEndpoint(ModelHost host, IOptions<ModelOptions> options)
{
    public IResult Handle() => Results.Json(new JsonObject
    {
        ["object"] = "list",
        ["data"] = new JsonArray(new JsonObject
        {
            ["id"] = host.ModelId,
            ["object"] = "model",
            ["created"] = host.LoadedAt.ToUnixTimeSeconds(),
            ["owned_by"] = "serving",
            ["root"] = host.Model.Directory,
            ["parent"] = null,
            ["max_model_len"] = Math.Min(options.Value.MaxContext, host.Model.Model.MaxPositions),
        }),
    });
}
