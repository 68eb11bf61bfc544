using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Engine.Generation;

namespace Serving.Runtime.Speculation;

/// <summary>
/// The engine loop's speculative decoding: which requests draft and from what (their prediction, their own tokens, their
/// tenant's earlier outputs), the drafts each running request offers the next step within the step's row budget, and the
/// tenants' output histories. Engine loop only (<see cref="Start"/> on the caller's thread touches nothing shared).
/// </summary>
internal sealed class DraftPlanner(SpeculationOptions options)
{
    private readonly OutputHistories _histories = new(options.HistoryTokens);

    /// <summary>What the server drafts from, for the start-up log.</summary>
    public string Description => options.Tokens == 0
        ? "off (Serving:Speculation:Tokens is 0; predictions are accepted and unused)"
        : $"up to {options.Tokens} drafts a sequence within {options.MaxStepRows} rows a step, from predictions" + options.Method switch
        {
            SpeculationMethod.Ngram => $" and n-gram lookup ({options.PromptLookupMin}..{options.PromptLookupMax} tokens)",
            SpeculationMethod.Suffix => $", n-gram lookup ({options.PromptLookupMin}..{options.PromptLookupMax} tokens) and each tenant's last {options.HistoryTokens} output tokens",
            _ => " only",
        };

    /// <summary>
    /// A queued request's drafts, or null when it drafts nothing. Throws <see cref="ArgumentException"/> for a prediction
    /// longer than the server accepts.
    /// </summary>
    public SequenceDrafts? Start(string tenant, string? cacheSalt, IReadOnlyList<int>? prediction)
    {
        if (prediction is not null && prediction.Count > options.MaxPredictionTokens)
            throw new ArgumentException($"the prediction has {prediction.Count} tokens, more than the {options.MaxPredictionTokens} this server accepts");
        if (!SequenceDrafts.Drafts(options, prediction))
            return null;
        return new SequenceDrafts(options, prediction, options.Method == SpeculationMethod.Suffix ? () => _histories.For(tenant, cacheSalt) : null);
    }

    /// <summary>A request ended with its last token: under <see cref="SpeculationMethod.Suffix"/> its text joins its tenant's history.</summary>
    public void Finished(string tenant, string? cacheSalt, SequenceState sequence)
    {
        if (options.Method == SpeculationMethod.Suffix)
            _histories.Add(tenant, cacheSalt, sequence.PromptTokens, sequence.GeneratedTokens);
    }

    /// <summary>
    /// The next step's drafts of every running request that drafts (<paramref name="draftsOf"/> gives its drafts and
    /// sequence, or null), the rows a step may have beyond its sequences' own shared evenly
    /// (<see cref="SpeculationOptions.MaxStepRows"/>); none when the batch leaves no room.
    /// </summary>
    public void Propose(IReadOnlyList<ScheduledRequest> running, Func<RequestId, (SequenceDrafts Drafts, SequenceState Sequence)?> draftsOf)
    {
        int drafting = 0;
        foreach (var scheduled in running)
            if (draftsOf(scheduled.Id) is not null)
                drafting++;
        if (drafting == 0)
            return;
        int each = options.DraftsPerSequence(running.Count, drafting);
        foreach (var scheduled in running)
            if (draftsOf(scheduled.Id) is var (drafts, sequence))
                scheduled.DraftTokens = each > 0 && sequence.GeneratedTokens.Count > 0 ? drafts.Propose(sequence, each) : 0;
    }
}
