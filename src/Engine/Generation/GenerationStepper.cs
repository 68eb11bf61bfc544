using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using TorchSharp;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Engine.Generation;

/// <summary>
/// Runs the rows a scheduler planned as one forward pass: running sequences decode one token, new ones prefill their
/// prompt whole or a chunk of it, all in the same packed batch; a sequence emits its first token in the step that completes
/// its prompt. Which rows run, from which position, in which KV blocks, is the caller's decision alone: the stepper keeps
/// no positions and no blocks.
/// </summary>
/// <param name="model">The model to run.</param>
/// <param name="cache">The KV storage the rows' block tables address.</param>
public sealed class GenerationStepper(LlamaModel model, KvCache cache)
{
    public LlamaModel Model => model;
    public KvCache Cache => cache;

    /// <summary>Where the last <see cref="Run"/> that returned spent its time.</summary>
    public StepTimings LastTimings { get; private set; }

    /// <summary>
    /// Runs <paramref name="rows"/> (none with drafts) as one forward pass. Returns one entry per row: its token, or null
    /// when the row only advanced its prompt. See <see cref="Step"/>.
    /// </summary>
    public IReadOnlyList<TokenEvent?> Run(IReadOnlyList<StepRow> rows)
    {
        if (rows.Any(r => r.DraftCount > 0))
            throw new ArgumentException("rows with drafts emit several tokens: run them with Step");
        return [.. Step(rows).Select(e => e.Count == 0 ? null : e[0])];
    }

    /// <summary>
    /// Runs <paramref name="rows"/> as one forward pass. Returns each row's tokens, in order: none when the row only advanced
    /// its prompt; one for a row that reached its sequence's end; for a row with drafts, the sampled token after the
    /// sequence's end and, while each sampled token equals the draft it follows (and the sequence has not finished), the
    /// token sampled after that draft — so a row adds from 1 to drafts + 1 tokens. Each token is sampled exactly as a step
    /// without drafts would have sampled it (the same logits, sampling state and random draws), so drafts change how many
    /// steps a sequence takes, never what it generates: for a draft proposed without a distribution, taking the sampled
    /// token when it equals the draft is speculative decoding's rejection sampling.
    /// If it throws, no sequence has changed: the same rows may run again, together or apart (the KV positions they wrote
    /// are rewritten with the same values).
    /// </summary>
    public IReadOnlyList<IReadOnlyList<TokenEvent>> Step(IReadOnlyList<StepRow> rows)
    {
        if (rows.Count == 0)
            return [];
        foreach (var row in rows)
        {
            var s = row.Sequence;
            if (s.IsFinished)
                throw new ArgumentException("a finished sequence cannot run");
            if (row.TokenCount < 1 || row.StartPosition < 0 || row.EndPosition > s.TotalTokens)
                throw new ArgumentException($"a row of positions [{row.StartPosition}, {row.EndPosition}) does not fit a sequence of {s.TotalTokens} tokens");
            if (s.TotalTokens + row.DraftCount > cache.MaxContext || s.TotalTokens >= cache.MaxContext)
                throw new ArgumentException($"sequence of {s.TotalTokens} tokens and {row.DraftCount} drafts does not fit the context limit {cache.MaxContext}");
            if (row.DraftCount > 0 && !row.EmitsToken)
                throw new ArgumentException("only a row that reaches its sequence's end can carry drafts");
            if (model.Config.BidirectionalAttention && (row.StartPosition != 0 || !row.EmitsToken || s.GeneratedTokens.Count > 0))
                throw new ArgumentException("a model of bidirectional attention computes each prompt whole, in one row, and generates nothing after it");
        }

        var scoring = PromptScoring.Plan(rows);
        if (scoring is not null && rows.Any(r => r.DraftCount > 0))
            rows = [.. rows.Select(r => r with { Drafts = null })];     // scoring maps logits row by row: this step verifies nothing
        var (batch, lora, firstLogit) = Pack(rows);
        var masks = PrepareMasks(rows);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        // Serving records no autograd graph; saying so lets the CPU kernels rotate in place instead of the step building
        // RoPE tables it never uses (RotaryEmbedding.StepTables).
        using var inference = no_grad();
        var pooling = PromptPoolingPlan.Plan(rows);
        using var hidden = pooling is not null || EmbedsAPrompt(rows) ? new HiddenStateCapture(pooling?.Ranges) : null;
        using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, lora, scoring?.LogitTokens, hidden);
        long forwarded = System.Diagnostics.Stopwatch.GetTimestamp();
        using var cpu = logits.device.type == DeviceType.CPU ? logits.alias() : logits.cpu();
        long copied = System.Diagnostics.Stopwatch.GetTimestamp();
        var ready = new List<int>(rows.Count);
        foreach (var (i, row) in rows.Index())
            if (row.EmitsToken)
                ready.Add(i);                       // else the prompt is not complete yet: no next-token prediction

        masks?.Wait();
        long masked = System.Diagnostics.Stopwatch.GetTimestamp();
        var tokens = Sample(cpu, rows, ready, scoring?.LastRow ?? firstLogit);
        var scores = scoring is null ? null : Score(scoring, cpu, rows);
        var lastRow = scoring?.LastRow ?? firstLogit;
        var pooled = pooling?.Finish(hidden!, rows);
        var embeddings = hidden is null ? null : ready.Select(i => pooled?.GetValueOrDefault(i)
            ?? (rows[i].Sequence is { Sampling.EmbedPrompt: true, GeneratedTokens.Count: 0 } ? hidden.Row(lastRow[i]) : null)).ToArray();
        // Only now, with nothing left to fail, does a sequence change.
        if (scores is not null)
            scoring!.Record(scores, rows);
        pooling?.Record(hidden!, rows);
        var events = new List<TokenEvent>[rows.Count];
        for (int i = 0; i < rows.Count; i++)
            events[i] = [];
        for (int i = 0; i < ready.Count; i++)
        {
            var e = rows[ready[i]].Sequence.Accept(tokens[i], cache.MaxContext);
            events[ready[i]].Add(embeddings?[i] is { } embedding ? e with { Embedding = embedding } : e);
        }
        Verify(cpu, rows, ready, firstLogit, events, cache.MaxContext);

        LastTimings = new StepTimings(System.Diagnostics.Stopwatch.GetElapsedTime(started, forwarded),
            System.Diagnostics.Stopwatch.GetElapsedTime(forwarded, copied), System.Diagnostics.Stopwatch.GetElapsedTime(masked),
            masks is null ? TimeSpan.Zero : masks.Result, System.Diagnostics.Stopwatch.GetElapsedTime(copied, masked));
        return events;
    }

    /// <summary>Whether a row completes the prompt of a sequence that asked for its last token's embedding (a loop: this runs every step).</summary>
    private static bool EmbedsAPrompt(IReadOnlyList<StepRow> rows)
    {
        for (int i = 0; i < rows.Count; i++)
            if (rows[i].EmitsToken && rows[i].Sequence is { Sampling.EmbedPrompt: true, GeneratedTokens.Count: 0 })
                return true;
        return false;
    }

    /// <summary>
    /// The step's packed batch: each row's tokens, then one decode slice per draft at the positions after the sequence's end
    /// (same block table, same adapters); and each row's first logits row (one logits row per slice).
    /// </summary>
    private static (ForwardBatch Batch, LoraBatchMapping? Lora, int[] FirstLogit) Pack(IReadOnlyList<StepRow> rows)
    {
        var slices = new List<(KvBlockTable Kv, IReadOnlyList<int> Tokens, int StartPosition)>(rows.Count);
        var adapters = new List<IReadOnlyList<Serving.Contracts.AdapterSlotWeight>>(rows.Count);
        var firstLogit = new int[rows.Count];
        foreach (var (i, r) in rows.Index())
        {
            firstLogit[i] = slices.Count;
            slices.Add((r.Kv, r.Sequence.TokensFrom(r.StartPosition, r.TokenCount), r.StartPosition));
            adapters.Add(r.Sequence.Adapters);
            for (int j = 0; j < r.DraftCount; j++)
            {
                slices.Add((r.Kv, [r.Drafts![j]], r.Sequence.TotalTokens + j));
                adapters.Add(r.Sequence.Adapters);
            }
        }

        var lora = adapters.Any(a => a.Count > 0) ? LoraBatchMapping.ForSequences([.. slices.Select(s => s.Tokens.Count)], adapters) : null;
        return (ForwardBatch.Create(slices), lora, firstLogit);
    }

    /// <summary>
    /// The drafts' rounds: round j samples, for every row whose tokens so far equal its first j drafts and that has not
    /// finished, the token after draft j from that draft's logits row, with the sequence's state as it now stands (history,
    /// constraint, suppressed tokens, random stream). A round that throws ends the verification: the tokens accepted so far
    /// are the sequences' own either way.
    /// </summary>
    private static void Verify(Tensor logits, IReadOnlyList<StepRow> rows, List<int> ready, int[] firstLogit, List<TokenEvent>[] events, int contextLimit)
    {
        bool anyDrafts = false;
        for (int i = 0; i < rows.Count && !anyDrafts; i++)
            anyDrafts = rows[i].DraftCount > 0;
        if (!anyDrafts)
            return;                                                   // a step without drafts allocates nothing here
        var live = ready.Where(i => Continues(rows[i], events[i])).ToList();
        var logitRow = (int[])firstLogit.Clone();
        while (live.Count > 0)
        {
            foreach (int i in live)
                logitRow[i]++;
            SampledToken[] sampled;
            try
            {
                sampled = Sample(logits, rows, live, logitRow);
            }
            catch (Exception)
            {
                return;
            }

            for (int n = 0; n < live.Count; n++)
                events[live[n]].Add(rows[live[n]].Sequence.Accept(sampled[n], contextLimit));
            live.RemoveAll(i => !Continues(rows[i], events[i]));
        }
    }

    /// <summary>Whether a row's last token is its next draft's match and the sequence goes on: the token after that draft is sampled too.</summary>
    private static bool Continues(StepRow row, List<TokenEvent> events) =>
        !row.Sequence.IsFinished && events.Count <= row.DraftCount && events[^1].Token.Id == row.Drafts![events.Count - 1];

    /// <summary>
    /// Starts computing, on a pool thread, the token masks that constrained rows sampling this step will need and that are
    /// not cached yet, so the trie walks overlap the forward pass instead of following it. Returns the work's duration, or
    /// null when there is none.
    /// </summary>
    private static Task<TimeSpan>? PrepareMasks(IReadOnlyList<StepRow> rows)
    {
        List<(Constraints.TokenConstraint Constraint, int State)>? missing = null;
        foreach (var row in rows)
        {
            var s = row.Sequence;
            if (row.EmitsToken && s.Constraint is { } c && !c.HasMask(s.ConstraintState))
                (missing ??= []).Add((c, s.ConstraintState));
        }

        if (missing is null)
            return null;
        return Task.Run(() =>
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            foreach (var (constraint, state) in missing)
                constraint.AllowedTokens(state);
            return System.Diagnostics.Stopwatch.GetElapsedTime(start);
        });
    }

    /// <summary>
    /// The next token of each row in <paramref name="ready"/> from its row of float32 logits <c>[rows, vocab]</c>, rows spread
    /// over the OpenMP team. Each sequence samples with its own generator, so the result is the same as row by row. Why in
    /// parallel: a temperature / top-p draw over a 32k vocabulary takes from a few hundred microseconds to milliseconds (a
    /// flat distribution needs most of the vocabulary for top-p 0.95), which serial sampling adds to every step of a batch
    /// (docs/benchmarks/engine.md).
    /// </summary>
    /// <param name="logits">Float32 logits <c>[logits rows, vocab]</c>.</param>
    /// <param name="rows">The step's rows.</param>
    /// <param name="ready">The rows that sample.</param>
    /// <param name="logitRow">Each step row's logits row to sample from.</param>
    private static unsafe SampledToken[] Sample(Tensor logits, IReadOnlyList<StepRow> rows, List<int> ready, int[] logitRow)
    {
        var tokens = new SampledToken[ready.Count];
        int vocab = (int)logits.size(1);
        fixed (byte* data = logits.bytes)
            Kernels.OpenMpTeam.For(ready.Count, new SampleRows((float*)data, vocab, rows, ready, logitRow, tokens));
        return tokens;
    }

    private static unsafe PromptTokenLogprob[] Score(PromptScoring scoring, Tensor logits, IReadOnlyList<StepRow> rows)
    {
        fixed (byte* data = logits.bytes)
            return scoring.Score((float*)data, (int)logits.size(1), rows);
    }

    /// <summary>Part i samples row ready[i] into tokens[i].</summary>
    private readonly unsafe struct SampleRows(float* logits, int vocab, IReadOnlyList<StepRow> rows, List<int> ready, int[] logitRow, SampledToken[] tokens)
        : Kernels.IParallelPart
    {
        public void Run(int i)
        {
            var s = rows[ready[i]].Sequence;
            var allowed = s.AllowedTokens();
            long row = logitRow[ready[i]];
            tokens[i] = TokenSampler.Sample(new ReadOnlySpan<float>(logits + row * vocab, vocab), s.Sampling, s.Random, allowed,
                s.History, s.SuppressedTokens(allowed));
        }
    }
}
