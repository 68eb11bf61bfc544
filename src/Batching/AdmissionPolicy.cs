namespace Serving.Batching;

/// <summary>How requests with different adapters may share an engine step.</summary>
public enum AdmissionPolicy
{
    /// <summary>Any mix of adapters (and the base model) in one batch, up to the device slots: the point of Serving.</summary>
    Continuous,

    /// <summary>
    /// Baseline for benchmarks: only requests with the same adapter set share a step, which is what llama.cpp's server
    /// does; a different set waits until the running batch drains.
    /// </summary>
    PerAdapter,
}
