using Serving.Contracts;
using Serving.Engine.Constraints;
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
    private HashSet<int>? _suppressed;
    private readonly IncrementalDetokenizer _detokenizer;
    private readonly StopStringMatcher _stops;
    private readonly HashSet<int> _stopTokens;
    private readonly TokenConstraint? _constraint;
    private readonly TokenHistory? _history;
    private readonly PromptTokenLogprob?[]? _promptLogprobs;
    private int _constraintState;

    /// <param name="promptTokens">The prompt, already tokenized (at least one token).</param>
    /// <param name="sampling">How to pick tokens and when to stop.</param>
    /// <param name="tokenizer">Turns generated ids into text.</param>
    /// <param name="eosTokenIds">Ids that end generation unless <see cref="SamplingParams.IgnoreEos"/>.</param>
    /// <param name="adapters">The (adapter slot, weight) pairs applied to every token of this sequence; empty = base model.</param>
    /// <param name="constraint"><see cref="SamplingParams.Constraint"/> compiled for this model's vocabulary, or null.</param>
    public SequenceState(IReadOnlyList<int> promptTokens, SamplingParams sampling, HfTokenizer tokenizer, IEnumerable<int> eosTokenIds,
        IReadOnlyList<AdapterSlotWeight>? adapters = null, TokenConstraint? constraint = null)
    {
        if (promptTokens.Count == 0)
            throw new ArgumentException("the prompt must contain at least one token");
        sampling.Validate();
        PromptTokens = promptTokens;
        Sampling = sampling;
        Adapters = adapters ?? [];
        Random = sampling.Seed is ulong seed ? new SeededRandom(seed) : SeededRandom.FromEntropy();
        _detokenizer = new IncrementalDetokenizer(tokenizer, sampling.SkipSpecialTokens);
        _stops = new StopStringMatcher(sampling.StopStrings, sampling.IncludeStopStringInOutput);
        _stopTokens = [.. sampling.StopTokenIds];
        if (!sampling.IgnoreEos)
            _stopTokens.UnionWith(eosTokenIds);
        if ((sampling.Constraint is null) != (constraint is null))
            throw new ArgumentException("a sequence's compiled constraint must match its sampling parameters' constraint");
        _constraint = constraint;
        _constraintState = constraint?.Start ?? 0;
        if (sampling.Penalizes)
            _history = new TokenHistory(promptTokens, indexPrompt: sampling.RepetitionPenalty != 1f);
        if (sampling.PromptLogprobs is not null)
            _promptLogprobs = new PromptTokenLogprob?[promptTokens.Count];
        if (sampling is { EmbedPrompt: true, Pooling: not PromptPooling.LastToken })
            Pool = new PromptPool(sampling.Pooling, promptTokens.Count);
    }

    /// <summary>The prompt's pooled states so far, for an embedding that pools more than the last token; else null.</summary>
    internal PromptPool? Pool { get; }

    /// <summary>
    /// Records prompt token <paramref name="position"/>'s score (≥ 1). A preempted sequence that computes its prompt again
    /// scores it again, to the same value.
    /// </summary>
    internal void ScorePromptToken(int position, PromptTokenLogprob score) => _promptLogprobs![position] = score;

    public IReadOnlyList<int> PromptTokens { get; }
    public SamplingParams Sampling { get; }
    /// <summary>Device slots and weights; rebound when a preempted sequence resumes (its slots may move, its adapter versions do not).</summary>
    public IReadOnlyList<AdapterSlotWeight> Adapters { get; set; }
    public SeededRandom Random { get; }
    public IReadOnlyList<int> GeneratedTokens => _generated;
    public FinishReason Finish { get; private set; }
    public bool IsFinished => Finish != FinishReason.None;

    /// <summary>The output constraint this sequence samples under, or null.</summary>
    public TokenConstraint? Constraint => _constraint;

    /// <summary>Where the output so far stands in <see cref="Constraint"/>'s automaton.</summary>
    public int ConstraintState => _constraintState;

    /// <summary>
    /// Whether a constrained sequence ended without its output being complete (max_tokens, the context limit or a stop
    /// string came first): the text is then a prefix of a valid output, not a valid one.
    /// </summary>
    public bool OutputIncomplete { get; private set; }

    /// <summary>
    /// The tokens the next step may choose under <see cref="Constraint"/>: the automaton's mask, plus the stop tokens when
    /// the output so far is complete (or when nothing can continue it, so the sequence still ends). Null when unconstrained.
    /// </summary>
    internal (ulong[] Mask, IReadOnlyCollection<int> AlsoAllowed)? AllowedTokens()
    {
        if (_constraint is null)
            return null;
        var mask = _constraint.AllowedTokens(_constraintState);
        bool stuck = !mask.AsSpan().ContainsAnyExcept(0UL);
        return (mask, _constraint.IsAccepting(_constraintState) || stuck ? _stopTokens : []);
    }

    /// <summary>The tokens the penalties read, or null when the sampling parameters use none.</summary>
    internal TokenHistory? History => _history;

    /// <summary>
    /// Tokens the next step may not choose: the stop tokens while fewer than <see cref="SamplingParams.MinTokens"/> are
    /// generated, unless an output constraint leaves nothing else to choose (a complete output that nothing may extend);
    /// and the token that would complete one of <see cref="SamplingParams.BadWords"/>, as vLLM's bad-words processor
    /// (over the generated tokens only).
    /// </summary>
    internal IReadOnlyCollection<int> SuppressedTokens((ulong[] Mask, IReadOnlyCollection<int> AlsoAllowed)? allowed)
    {
        IReadOnlyCollection<int> stops = _generated.Count >= Sampling.MinTokens || (allowed is { } a && !a.Mask.AsSpan().ContainsAnyExcept(0UL))
            ? [] : _stopTokens;
        if (Sampling.BadWords.Count == 0)
            return stops;
        // One set per sequence, refilled each step: the step reads it before this sequence's next step asks again.
        var suppressed = _suppressed ??= [];
        suppressed.Clear();
        suppressed.UnionWith(stops);
        var output = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_generated);
        foreach (var word in Sampling.BadWords)
            if (EndsWithAllButLast(output, word))
                suppressed.Add(word[^1]);
        return suppressed;
    }

    private static bool EndsWithAllButLast(ReadOnlySpan<int> output, IReadOnlyList<int> word)
    {
        int before = word.Count - 1;
        if (output.Length < before)
            return false;
        for (int i = 0; i < before; i++)
            if (output[output.Length - before + i] != word[i])
                return false;
        return true;
    }

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
        _history?.Add(token.Id);
        string delta;
        if (_stopTokens.Contains(token.Id))
        {
            Finish = FinishReason.Stop;
            // vLLM leaves the stop token's text out unless include_stop_str_in_output asks for it.
            delta = Sampling.IncludeStopStringInOutput ? _stops.Append(_detokenizer.Push(token.Id)) : "";
            delta += _stops.Append(_detokenizer.Flush()) + _stops.Flush();
            return Finished(token, delta);
        }

        bool complete = false, broken = false;
        if (_constraint is not null)
        {
            _constraintState = _constraint.Advance(_constraintState, token.Id);
            // Complete and nothing may follow: the output is done, whatever max_tokens still allows.
            complete = _constraint.IsAccepting(_constraintState) && !_constraint.CanContinue(_constraintState);
            // Only a token outside the mask gets here (the vocabulary could not continue the output): end it, incomplete,
            // rather than generate on from a state nothing can leave.
            broken = _constraintState == TokenConstraint.Dead;
        }

        delta = _stops.Append(_detokenizer.Push(token.Id));
        if (_stops.Stopped || complete || broken)
            Finish = FinishReason.Stop;
        else if (_generated.Count >= Sampling.MaxTokens || TotalTokens >= contextLimit)
            Finish = FinishReason.Length;
        if (Finish == FinishReason.Length || complete || broken)
            delta += _stops.Append(_detokenizer.Flush()) + _stops.Flush();
        return Finished(token, delta);
    }

    private TokenEvent Finished(SampledToken token, string delta)
    {
        // A stop string cuts the text where the automaton cannot follow: such an output is never claimed complete.
        if (Finish != FinishReason.None && _constraint is not null)
            OutputIncomplete = _stops.Stopped || !_constraint.IsAccepting(_constraintState);
        return new TokenEvent(token, delta, Finish) { OutputIncomplete = OutputIncomplete, PromptLogprobs = _generated.Count == 1 ? _promptLogprobs : null };
    }
}
