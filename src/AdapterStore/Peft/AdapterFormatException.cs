namespace Serving.AdapterStore.Peft;

/// <summary>
/// An adapter that cannot be served on this base model (HTTP 422 / FAILED_PRECONDITION). The message names the
/// adapter, the file, the tensor or field where known, and the rule broken.
/// </summary>
internal sealed class AdapterFormatException(string adapter, string file, string? item, string rule)
    : Exception($"adapter '{adapter}': {file}{(item is null ? "" : $": {item}")}: {rule}")
{
    public string Adapter { get; } = adapter;
    public string File { get; } = file;
    public string? Item { get; } = item;
    public string Rule { get; } = rule;
}
