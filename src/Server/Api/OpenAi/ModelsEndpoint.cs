using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// <c>GET /v1/models</c>: the base model under each of its names (its id, then its aliases), then every adapter the caller
/// may use, with <c>parent</c> = the base model id.
/// </summary>
internal sealed class ModelsEndpoint(ModelHost host, IOptions<ModelOptions> options)
{
    public IResult Handle(Security.Caller caller)
    {
        long created = host.LoadedAt.ToUnixTimeSeconds();
        int maxLength = Math.Min(options.Value.MaxContext, host.Served.MaxPositions);
        var data = new JsonArray([.. host.ModelNames.Select(name => (JsonNode)new JsonObject
        {
            ["id"] = name,
            ["object"] = "model",
            ["created"] = created,
            ["owned_by"] = "serving",
            ["root"] = caller.IsAdmin ? host.Served.Directory : host.ModelId,
            ["parent"] = null,
            ["max_model_len"] = maxLength,
            ["quantization"] = host.QuantizationName,
        })]);
        foreach (var id in host.Adapters.List())
        {
            var record = host.Adapters.Resolve(id);
            if (record is null || !caller.CanUse(record))
                continue;
            data.Add(new JsonObject
            {
                ["id"] = id.Value,
                ["object"] = "model",
                ["created"] = created,
                ["owned_by"] = record.Tenant ?? "serving",
                ["root"] = caller.MaySeeSourceOf(record) ? record.Source : id.Value,
                ["version"] = record.Version,
                ["parent"] = host.ModelId,
                ["max_model_len"] = maxLength,
            });
        }

        return Results.Json(new JsonObject { ["object"] = "list", ["data"] = data });
    }
}
