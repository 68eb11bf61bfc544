using Serving.Contracts.Generation;
using Serving.Engine.Generation;

namespace Serving.Runtime.Speculation;

/// <summary>
/// One request's draft tokens between steps: proposed after each step from its predicted output or (n-gram) its own tokens,
/// handed to the next step as far as the scheduler planned them, and the prediction's tally. Engine loop only.
/// </summary>
internal sealed class SequenceDrafts
{
    private readonly int[] _drafts;
    private readonly int[]? _prediction;
    private readonly SpeculationOptions _options;
    private int[] _tokens = [];
    private int _copied;
    private int _count;
    private bool _fromPrediction;
    private int _accepted, _rejected;

    private readonly Func<OutputHistory?>? _history;

    /// <param name="options">The server's speculation settings.</param>
    /// <param name="prediction">The request's predicted output's tokens, or null.</param>
    /// <param name="history">Its tenant's earlier outputs, as they stand when asked (<see cref="SpeculationMethod.Suffix"/>); null: none.</param>
    public SequenceDrafts(SpeculationOptions options, IReadOnlyList<int>? prediction, Func<OutputHistory?>? history = null)
    {
        _options = options;
        _history = history;
        _prediction = prediction is { Count: > 0 } ? [.. prediction] : null;
        _drafts = new int[options.Tokens];
    }

    /// <summary>Whether this request drafts at all (speculation on, and a prediction or the n-gram method).</summary>
    public static bool Drafts(SpeculationOptions options, IReadOnlyList<int>? prediction) =>
        options.Tokens > 0 && (options.Method != SpeculationMethod.None || prediction is { Count: > 0 });

    /// <summary>The prediction's tally so far, or null when the request sent none.</summary>
    public PredictionTokens? Prediction => _prediction is null ? null : new PredictionTokens(_accepted, _rejected);

    /// <summary>
    /// Proposes at most <paramref name="most"/> drafts that may follow <paramref name="sequence"/> now (none after it
    /// finished, or when there is no room left under its max_tokens); returns how many.
    /// </summary>
    public int Propose(SequenceState sequence, int most)
    {
        _count = 0;
        int room = Math.Min(Math.Min(most, _drafts.Length), sequence.Sampling.MaxTokens - sequence.GeneratedTokens.Count - 1);
        if (sequence.IsFinished || room <= 0)
            return 0;
        // The sequence only grows (a preempted one keeps its tokens): copy what is new since the last proposal.
        int total = sequence.TotalTokens, prompt = sequence.PromptTokens.Count;
        if (_tokens.Length < total)
            Array.Resize(ref _tokens, Math.Max(total, 2 * _tokens.Length));
        for (int i = _copied; i < total; i++)
            _tokens[i] = i < prompt ? sequence.PromptTokens[i] : sequence.GeneratedTokens[i - prompt];
        _copied = total;
        ReadOnlySpan<int> tokens = _tokens.AsSpan(0, total);
        var into = _drafts.AsSpan(0, room);
        if (_prediction is not null)
        {
            _count = NgramProposer.FromPrediction(tokens, _prediction, sequence.GeneratedTokens.Count, 1, _options.PromptLookupMax, into);
            _fromPrediction = _count > 0;
        }

        if (_count == 0 && _options.Method != SpeculationMethod.None)
            _count = NgramProposer.FromSequence(tokens, _options.PromptLookupMin, _options.PromptLookupMax, into);
        if (_count == 0 && _history?.Invoke() is { } history)
            _count = history.Propose(tokens, into);
        return _count;
    }

    /// <summary>The first <paramref name="planned"/> drafts, for the step the scheduler planned them into.</summary>
    public IReadOnlyList<int> Planned(int planned) =>
        planned <= _count ? new ArraySegment<int>(_drafts, 0, planned) : throw new InvalidOperationException($"{planned} drafts planned, {_count} proposed");

    /// <summary>Counts a verified step's outcome: <paramref name="accepted"/> of <paramref name="planned"/> drafts taken.</summary>
    public void Record(int planned, int accepted)
    {
        if (!_fromPrediction)
            return;
        _accepted += accepted;
        _rejected += planned - accepted;
    }
}
