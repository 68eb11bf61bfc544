using Serving.Contracts;
using Serving.Engine.Sampling;
using Serving.Engine.Tokenization;
using Serving.Contracts.Generation;

namespace Serving.Engine.Generation;

/// <summary>
/// One request's generation in progress: its prompt, what it has generated and its sampling state. Where its KV lives and
/// how far it reaches belong to whoever plans the steps (<see cref="StepRow"/>). Mutated only by <see cref="GenerationStepper"/>.
/// </summary>
public sealed class SequenceState
{
    private readonly List<int> _generated = [];
    private readonly IncrementalDetokenizer _detokenizer;
    private readonly StopStringMatcher _stops;
    private readonly HashSet<int> _stopTokens;

    /// <param name="promptTokens">The prompt, already tokenized (at least one token).</param>
    /// <param name="sampling">How to pick tokens and when to stop.</param>
    /// <param name="tokenizer">Turns generated ids into text.</param>
    /// <param name="eosTokenIds">Ids that end generation unless <see cref="SamplingParams.IgnoreEos"/>.</param>
    /// <param name="adapters">The (adapter slot, weight) pairs applied to every token of this sequence; empty = base model.</param>
    public SequenceState(IReadOnlyList<int> promptTokens, SamplingParams sampling, HfTokenizer tokenizer, IEnumerable<int> eosTokenIds,
        IReadOnlyList<AdapterSlotWeight>? adapters = null)
    {
        if (promptTokens.Count == 0)
            throw new ArgumentException("the prompt must contain at least one token");
        sampling.Validate();
        PromptTokens = promptTokens;
        Sampling = sampling;
        Adapters = adapters ?? [];
        Random = sampling.Seed is ulong seed ? new SeededRandom(seed) : SeededRandom.FromEntropy();
        _detokenizer = new IncrementalDetokenizer(tokenizer);
        _stops = new StopStringMatcher(sampling.StopStrings);
        _stopTokens = [.. sampling.StopTokenIds];
        if (!sampling.IgnoreEos)
            _stopTokens.UnionWith(eosTokenIds);
    }

    public IReadOnlyList<int> PromptTokens { get; }
    public SamplingParams Sampling { get; }
    /// <summary>Device slots and weights; rebound when a preempted sequence resumes (its slots may move, its adapter versions do not).</summary>
    public IReadOnlyList<AdapterSlotWeight> Adapters { get; set; }
    public SeededRandom Random { get; }
    public IReadOnlyList<int> GeneratedTokens => _generated;
    public FinishReason Finish { get; private set; }
    public bool IsFinished => Finish != FinishReason.None;

    /// <summary>All tokens of the sequence so far (prompt, then generated).</summary>
    public int TotalTokens => PromptTokens.Count + _generated.Count;

    /// <summary>Tokens [start, start + count) of the sequence (prompt, then generated).</summary>
    public int[] TokensFrom(int start, int count)
    {
        var tokens = new int[count];
        for (int i = 0; i < count; i++)
        {
            int p = start + i;
            tokens[i] = p < PromptTokens.Count ? PromptTokens[p] : _generated[p - PromptTokens.Count];
        }

        return tokens;
    }

    internal TokenEvent Accept(SampledToken token, int contextLimit)
    {
        _generated.Add(token.Id);
        string delta;
        if (_stopTokens.Contains(token.Id))
        {
            Finish = FinishReason.Stop;
            delta = _stops.Append(_detokenizer.Flush()) + _stops.Flush();
            return new TokenEvent(token, delta, Finish);
        }

        delta = _stops.Append(_detokenizer.Push(token.Id));
        if (_stops.Stopped)
            Finish = FinishReason.Stop;
        else if (_generated.Count >= Sampling.MaxTokens || TotalTokens >= contextLimit)
            Finish = FinishReason.Length;
        if (Finish == FinishReason.Length)
            delta += _stops.Append(_detokenizer.Flush()) + _stops.Flush();
        return new TokenEvent(token, delta, Finish);
    }
}
