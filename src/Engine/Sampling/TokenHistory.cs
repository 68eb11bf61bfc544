namespace Serving.Engine.Sampling;

/// <summary>
/// What the penalties need of a sequence's tokens: how often each generated token occurs, and, for the repetition penalty,
/// which tokens the prompt holds. An index over the sequence's own token lists, written only where a token is accepted.
/// </summary>
internal sealed class TokenHistory(IReadOnlyList<int> prompt, bool indexPrompt)
{
    private readonly Dictionary<int, int> _generated = [];

    /// <summary>The prompt's distinct tokens, or null when no penalty reads them.</summary>
    public HashSet<int>? Prompt { get; } = indexPrompt ? [.. prompt] : null;

    /// <summary>Generated token → times generated.</summary>
    public IReadOnlyDictionary<int, int> Generated => _generated;

    public void Add(int token) => _generated[token] = _generated.GetValueOrDefault(token) + 1;
}
