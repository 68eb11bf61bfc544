using Serving.Runtime.Generation;

namespace Serving.Server.Requests;

/// <summary>
/// What a request runs on, from its <c>model</c> (and <c>adapters</c> / <c>routing</c>) fields: the adapters pinned for
/// it, or, for <c>model: "auto"</c>, null adapters and the routing options; and the model name as the caller sent it.
/// </summary>
internal sealed record RequestTarget(PinnedAdapters? Adapters, RoutingRequest? Routing, string ModelName);
