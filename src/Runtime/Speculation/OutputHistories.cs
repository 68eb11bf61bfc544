namespace Serving.Runtime.Speculation;

/// <summary>
/// Every tenant's <see cref="OutputHistory"/>, one per (tenant, <c>cache_salt</c>) as the prefix cache partitions KV: a
/// request drafts only from its own tenant's earlier outputs, so how fast it runs says nothing about another tenant's
/// (the one thing a draft could reveal). Bounded in tokens over all tenants, oldest text first out. Engine loop only.
/// </summary>
/// <param name="maxTokens">Tokens kept over all histories (<see cref="SpeculationOptions.HistoryTokens"/>).</param>
internal sealed class OutputHistories(long maxTokens)
{
    private readonly Dictionary<(string Tenant, string Salt), OutputHistory> _histories = [];
    private readonly Queue<(string Tenant, string Salt)> _order = new();
    private long _tokens;

    /// <summary>Tokens held over all histories.</summary>
    public long Tokens => _tokens;

    /// <summary>The history a request of <paramref name="tenant"/> with <paramref name="salt"/> drafts from; null when there is none yet.</summary>
    public OutputHistory? For(string tenant, string? salt) => _histories.GetValueOrDefault((tenant, salt ?? ""));

    /// <summary>Records a finished request's text: the last <see cref="OutputHistory.PatternTokens"/> prompt tokens, then its output.</summary>
    public void Add(string tenant, string? salt, IReadOnlyList<int> prompt, IReadOnlyList<int> output)
    {
        int tail = Math.Min(OutputHistory.PatternTokens, prompt.Count);
        if (output.Count == 0 || tail + output.Count > maxTokens)
            return;
        var text = new int[tail + output.Count];
        for (int i = 0; i < tail; i++)
            text[i] = prompt[prompt.Count - tail + i];
        for (int i = 0; i < output.Count; i++)
            text[tail + i] = output[i];
        var scope = (tenant, salt ?? "");
        if (!_histories.TryGetValue(scope, out var history))
            _histories[scope] = history = new OutputHistory();
        history.Add(text);
        _order.Enqueue(scope);
        _tokens += text.Length;
        while (_tokens > maxTokens)
        {
            var oldest = _order.Dequeue();
            var owner = _histories[oldest];
            _tokens -= owner.RemoveOldest();
            if (owner.IsEmpty)
                _histories.Remove(oldest);
        }
    }
}
