using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Server.Api;

/// <summary>
/// A request's JSON value as a mutable node, read as <see cref="JsonElement"/> reads it: where an object repeats a key,
/// the last one counts (<c>JsonNode.Parse</c> of the raw text throws on repeated keys instead: a body a client controls).
/// </summary>
internal static class JsonElementNodes
{
    public static JsonNode? ToNode(this JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                var o = new JsonObject();
                foreach (var property in value.EnumerateObject())
                    o[property.Name] = property.Value.ToNode();
                return o;
            case JsonValueKind.Array:
                var a = new JsonArray();
                foreach (var item in value.EnumerateArray())
                    a.Add(item.ToNode());
                return a;
            case JsonValueKind.Null or JsonValueKind.Undefined:
                return null;
            default:
                return JsonValue.Create(value.Clone());      // a copy: the request's document is disposed before some nodes are written
        }
    }
}
