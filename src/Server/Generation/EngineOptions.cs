namespace Serving.Server.Generation;

/// <summary><c>Serving:Engine</c>: admission limits of the engine loop.</summary>
internal sealed class EngineOptions
{
    public const string Section = "Serving:Engine";

    /// <summary>Requests that may wait for a free sequence row before new ones get 429.</summary>
    public int MaxQueuedRequests { get; set; } = 256;
}
