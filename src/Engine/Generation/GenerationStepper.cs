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
    /// Runs <paramref name="rows"/> as one forward pass. Returns one entry per row: its token, or null when the row only
    /// advanced its prompt. If it throws, no sequence has changed: the same rows may run again, together or apart (the KV
    /// positions they wrote are rewritten with the same values).
    /// </summary>
    public IReadOnlyList<TokenEvent?> Run(IReadOnlyList<StepRow> rows)
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
            if (s.TotalTokens >= cache.MaxContext)
                throw new ArgumentException($"sequence of {s.TotalTokens} tokens does not fit the context limit {cache.MaxContext}");
        }

        var batch = ForwardBatch.Create(rows.Select(r => (r.Kv, (IReadOnlyList<int>)r.Sequence.TokensFrom(r.StartPosition, r.TokenCount), r.StartPosition)).ToList());
        var lora = rows.Any(r => r.Sequence.Adapters.Count > 0)
            ? LoraBatchMapping.ForSequences(rows.Select(r => r.TokenCount).ToList(), rows.Select(r => r.Sequence.Adapters).ToList())
            : null;
        var masks = PrepareMasks(rows);
        var scoring = PromptScoring.Plan(rows);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        // Serving records no autograd graph; saying so lets the CPU kernels rotate in place instead of the step building
        // RoPE tables it never uses (RotaryEmbedding.StepTables).
        using var inference = no_grad();
        using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, lora, scoring?.LogitTokens);
        long forwarded = System.Diagnostics.Stopwatch.GetTimestamp();
        using var cpu = logits.device.type == DeviceType.CPU ? logits.alias() : logits.cpu();
        long copied = System.Diagnostics.Stopwatch.GetTimestamp();
        var ready = new List<int>(rows.Count);
        foreach (var (i, row) in rows.Index())
            if (row.EmitsToken)
                ready.Add(i);                       // else the prompt is not complete yet: no next-token prediction

        masks?.Wait();
        long masked = System.Diagnostics.Stopwatch.GetTimestamp();
        var tokens = Sample(cpu, rows, ready, scoring?.LastRow);
        var scores = scoring is null ? null : Score(scoring, cpu, rows);
        // Only now, with nothing left to fail, does a sequence change.
        if (scores is not null)
            scoring!.Record(scores, rows);
        var events = new TokenEvent?[rows.Count];
        for (int i = 0; i < ready.Count; i++)
            events[ready[i]] = rows[ready[i]].Sequence.Accept(tokens[i], cache.MaxContext);

        LastTimings = new StepTimings(System.Diagnostics.Stopwatch.GetElapsedTime(started, forwarded),
            System.Diagnostics.Stopwatch.GetElapsedTime(forwarded, copied), System.Diagnostics.Stopwatch.GetElapsedTime(masked),
            masks is null ? TimeSpan.Zero : masks.Result, System.Diagnostics.Stopwatch.GetElapsedTime(copied, masked));
        return events;
    }

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
    /// <param name="logits">Float32 logits, one row per step row, or as <paramref name="lastRow"/> maps them.</param>
    /// <param name="rows">The step's rows.</param>
    /// <param name="ready">The rows that sample.</param>
    /// <param name="lastRow">Each step row's logits row when the step computed more than last tokens (<see cref="PromptScoring"/>).</param>
    private static unsafe SampledToken[] Sample(Tensor logits, IReadOnlyList<StepRow> rows, List<int> ready, int[]? lastRow)
    {
        var tokens = new SampledToken[ready.Count];
        int vocab = (int)logits.size(1);
        fixed (byte* data = logits.bytes)
            Kernels.OpenMpTeam.For(ready.Count, new SampleRows((float*)data, vocab, rows, ready, lastRow, tokens));
        return tokens;
    }

    private static unsafe PromptTokenLogprob[] Score(PromptScoring scoring, Tensor logits, IReadOnlyList<StepRow> rows)
    {
        fixed (byte* data = logits.bytes)
            return scoring.Score((float*)data, (int)logits.size(1), rows);
    }

    /// <summary>Part i samples row ready[i] into tokens[i].</summary>
    private readonly unsafe struct SampleRows(float* logits, int vocab, IReadOnlyList<StepRow> rows, List<int> ready, int[]? lastRow, SampledToken[] tokens)
        : Kernels.IParallelPart
    {
        public void Run(int i)
        {
            var s = rows[ready[i]].Sequence;
            var allowed = s.AllowedTokens();
            long row = lastRow is null ? ready[i] : lastRow[ready[i]];
            tokens[i] = TokenSampler.Sample(new ReadOnlySpan<float>(logits + row * vocab, vocab), s.Sampling, s.Random, allowed,
                s.History, s.SuppressedTokens(allowed));
        }
    }
}
