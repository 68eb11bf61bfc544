namespace Serving.Runtime.Speculation;

/// <summary>Where draft tokens come from for requests without a predicted output.</summary>
public enum SpeculationMethod
{
    /// <summary>No drafts (a request's own <c>prediction</c> still drafts).</summary>
    None,

    /// <summary>Prompt lookup: the sequence's last tokens looked up earlier in the sequence (vLLM's <c>ngram</c>).</summary>
    Ngram,

    /// <summary>
    /// <see cref="Ngram"/>, then the same tenant's earlier outputs (<see cref="OutputHistory"/>; vLLM's <c>suffix</c> method
    /// drafts from earlier outputs too, across tenants): an agent's repeated calls, a template filled again.
    /// </summary>
    Suffix,
}
