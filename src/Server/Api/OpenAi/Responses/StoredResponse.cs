using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// A response kept for its tenant: the object as answered, and the conversation that went into it as Responses items
/// (earlier responses' inputs and outputs, then its own input). Items are JSON text, shared by reference with the
/// responses that continue this one, so a chain costs one copy of each item however long it grows.
/// </summary>
internal sealed record StoredResponse(string Id, string Tenant, DateTimeOffset CreatedAt, string Response, IReadOnlyList<string> Input, IReadOnlyList<string> Output)
{
    /// <summary>
    /// What the store counts against its bounds: the UTF-16 bytes of the response and of every item it refers to (items
    /// shared with other responses count in each, so the count never falls short of the memory held).
    /// </summary>
    public long Bytes { get; } = 2L * (Response.Length + Input.Sum(i => (long)i.Length) + Output.Sum(i => (long)i.Length));

    /// <summary>The items a response continuing this one starts from: this one's input, then its output.</summary>
    public IReadOnlyList<string> Conversation => [.. Input, .. Output];

    public JsonObject ResponseObject() => (JsonObject)JsonNode.Parse(Response)!;
}
