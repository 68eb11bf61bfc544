using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Generation;

/// <summary>
/// Runs the rows a scheduler planned as one forward pass: running sequences decode one token, new ones prefill their
/// prompt whole or a chunk of it, all in the same packed batch; a sequence emits its first token in the step that completes
/// its prompt. Which rows run, and how many prompt tokens each feeds, is the scheduler's decision alone. Assigns KV rows on
/// first use and releases them when a sequence finishes.
/// </summary>
/// <param name="model">The model to run.</param>
/// <param name="cache">The KV cache the sequences' rows come from.</param>
internal sealed class GenerationStepper(LlamaModel model, KvCache cache)
{
    public LlamaModel Model => model;
    public KvCache Cache => cache;

    /// <summary>Where the last <see cref="Run"/> that returned spent its time.</summary>
    public StepTimings LastTimings { get; private set; }

    /// <summary>
    /// Runs rows planned by a scheduler as one forward pass: each sequence feeds the next <c>Tokens</c> of its uncached tokens
    /// (all of them, or a prompt chunk). Returns one entry per row: its token, or null when the row only advanced its prompt.
    /// KV blocks are added as the rows need them; a finished sequence's are released. If it throws, no sequence has advanced:
    /// the same rows may run again, together or apart.
    /// </summary>
    public IReadOnlyList<TokenEvent?> Run(IReadOnlyList<(SequenceState Sequence, int Tokens)> rows)
    {
        if (rows.Count == 0)
            return [];
        foreach (var (s, n) in rows)
        {
            if (s.IsFinished)
                throw new ArgumentException("a finished sequence cannot run");
            if (n < 1 || n > s.TotalTokens - s.CachedTokens)
                throw new ArgumentException($"a row of {n} tokens does not fit the sequence's {s.TotalTokens - s.CachedTokens} uncached tokens");
            if (s.TotalTokens >= cache.MaxContext)
                throw new ArgumentException($"sequence of {s.TotalTokens} tokens does not fit the context limit {cache.MaxContext}");
            s.Kv ??= cache.Allocate();
        }

        var batch = ForwardBatch.Create(rows.Select(r => (r.Sequence.Kv!, (IReadOnlyList<int>)r.Sequence.TokensFrom(r.Sequence.CachedTokens, r.Tokens), r.Sequence.CachedTokens)).ToList());
        var lora = rows.Any(r => r.Sequence.Adapters.Count > 0)
            ? LoraBatchMapping.ForSequences(rows.Select(r => r.Tokens).ToList(), rows.Select(r => r.Sequence.Adapters).ToList())
            : null;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, lora);
        long forwarded = System.Diagnostics.Stopwatch.GetTimestamp();
        using var cpu = logits.device.type == DeviceType.CPU ? logits.alias() : logits.cpu();
        long copied = System.Diagnostics.Stopwatch.GetTimestamp();
        var ready = new List<int>(rows.Count);
        foreach (var (row, (s, n)) in rows.Index())
            if (s.CachedTokens + n >= s.TotalTokens)
                ready.Add(row);                     // else the prompt is not complete yet: no next-token prediction

        var tokens = Sample(cpu, rows, ready);
        // Only now, with nothing left to fail: a step that throws leaves every sequence as it was, so its rows can run again
        // (the KV rows it wrote are rewritten with the same values).
        foreach (var (s, n) in rows)
            s.CachedTokens += n;
        var events = new TokenEvent?[rows.Count];
        for (int i = 0; i < ready.Count; i++)
        {
            var s = rows[ready[i]].Sequence;
            events[ready[i]] = s.Accept(tokens[i], cache.MaxContext);
            if (s.IsFinished)
                Release(s);
        }

        LastTimings = new StepTimings(System.Diagnostics.Stopwatch.GetElapsedTime(started, forwarded),
            System.Diagnostics.Stopwatch.GetElapsedTime(forwarded, copied), System.Diagnostics.Stopwatch.GetElapsedTime(copied));
        return events;
    }

    /// <summary>
    /// The next token of each row in <paramref name="ready"/> from its row of float32 logits <c>[rows, vocab]</c>, rows spread
    /// over the OpenMP team. Each sequence samples with its own generator, so the result is the same as row by row. Why in
    /// parallel: a temperature / top-p draw over a 32k vocabulary takes from a few hundred microseconds to milliseconds (a
    /// flat distribution needs most of the vocabulary for top-p 0.95); bench preset, bf16, batch 32, temperature 0.8 and
    /// top-p 0.95, same process alternating: step 109–119 ms with the rows sampled one after another, 81 ms spread over
    /// the two cores (greedy steps: 40–58 ms, unchanged).
    /// </summary>
    private static unsafe SampledToken[] Sample(Tensor logits, IReadOnlyList<(SequenceState Sequence, int Tokens)> rows, List<int> ready)
    {
        var tokens = new SampledToken[ready.Count];
        int vocab = (int)logits.size(1);
        fixed (byte* data = logits.bytes)
        {
            nint address = (nint)data;
            Kernels.OpenMpTeam.For(ready.Count, i =>
            {
                int row = ready[i];
                var s = rows[row].Sequence;
                tokens[i] = TokenSampler.Sample(new ReadOnlySpan<float>((float*)address + (long)row * vocab, vocab), s.Sampling, s.Random);
            });
        }

        return tokens;
    }

    /// <summary>Drops a preempted sequence's KV (blocks back to the pool); its tokens stay, and the next run recomputes them.</summary>
    public void Preempt(SequenceState sequence)
    {
        Release(sequence);
        sequence.CachedTokens = 0;
    }

    /// <summary>Frees a sequence's KV blocks (finished or cancelled).</summary>
    public void Release(SequenceState sequence)
    {
        if (sequence.Kv is KvBlockTable kv)
        {
            cache.Release(kv);
            sequence.Kv = null;
        }
    }
}
