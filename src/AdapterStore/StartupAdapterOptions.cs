namespace Serving.AdapterStore;

/// <summary>
/// An adapter registered when the server starts (<c>Serving:Adapters:Modules:N</c>; vLLM's <c>--lora-modules name=path</c>):
/// shared by every tenant, read from a trusted source as an admin's registration is, and a start-up error naming it if it
/// cannot be.
/// </summary>
public sealed class StartupAdapterOptions
{
    /// <summary>The adapter's name (<c>model</c> in requests).</summary>
    public string? Name { get; set; }

    /// <summary>A local PEFT adapter folder or an <c>s3://</c> URI.</summary>
    public string? Path { get; set; }
}
