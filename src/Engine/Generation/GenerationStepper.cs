using System.Runtime.InteropServices;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Generation;

/// <summary>
/// Advances a set of sequences with a single forward pass: running ones decode one token, new ones prefill, all in the
/// same packed batch. With a prefill budget, prompts are fed in chunks of at most that many tokens per step (shared in
/// order among the sequences still prefilling), so a long prompt never stalls the streams already running; a sequence
/// emits its first token in the step that completes its prompt. Assigns KV rows on first use and releases them when a
/// sequence finishes.
/// </summary>
/// <param name="model">The model to run.</param>
/// <param name="cache">The KV cache the sequences' rows come from.</param>
/// <param name="maxPrefillTokensPerStep">Prompt tokens fed per step across all sequences; 0 = whole prompts at once.</param>
internal sealed class GenerationStepper(LlamaModel model, KvCache cache, int maxPrefillTokensPerStep = 0)
{
    public LlamaModel Model => model;
    public KvCache Cache => cache;

    /// <summary>
    /// One step. Returns one entry per unfinished input sequence, in order: its token, or null when the sequence only
    /// advanced its prompt this step (chunked prefill) or had no prefill budget left.
    /// </summary>
    public IReadOnlyList<TokenEvent?> Step(IReadOnlyList<SequenceState> sequences)
    {
        var active = sequences.Where(s => !s.IsFinished).ToList();
        if (active.Count == 0)
            return [];
        var events = new TokenEvent?[active.Count];
        int budget = maxPrefillTokensPerStep > 0 ? maxPrefillTokensPerStep : int.MaxValue;
        var feeds = new List<(int Index, IReadOnlyList<int> Tokens)>();
        for (int i = 0; i < active.Count; i++)
        {
            var s = active[i];
            if (s.TotalTokens >= cache.MaxContext)
                throw new ArgumentException($"sequence of {s.TotalTokens} tokens does not fit the context limit {cache.MaxContext}");
            var pending = s.PendingTokens();
            if (pending.Count > 1)
            {
                if (budget <= 0)
                    continue;                       // no prefill budget left this step: wait for the next
                if (pending.Count > budget)
                    pending = pending.Take(budget).ToArray();
                budget -= pending.Count;
            }

            s.Kv ??= cache.Allocate();
            feeds.Add((i, pending));
        }

        var batch = ForwardBatch.Create(feeds.Select(f => (active[f.Index].Kv!.Value, f.Tokens, active[f.Index].CachedTokens)).ToList());
        var lora = feeds.Any(f => active[f.Index].Adapters.Count > 0)
            ? LoraBatchMapping.ForSequences(feeds.Select(f => f.Tokens.Count).ToList(), feeds.Select(f => active[f.Index].Adapters).ToList())
            : null;
        using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, lora);
        using var cpu = logits.device.type == DeviceType.CPU ? logits.alias() : logits.cpu();
        var rows = MemoryMarshal.Cast<byte, float>(cpu.bytes);
        int vocab = (int)cpu.shape[1];
        for (int row = 0; row < feeds.Count; row++)
        {
            var (index, tokens) = feeds[row];
            var s = active[index];
            s.CachedTokens += tokens.Count;
            if (s.CachedTokens < s.TotalTokens)
                continue;                           // prompt not complete yet: its logits are not a next-token prediction
            var token = TokenSampler.Sample(rows.Slice(row * vocab, vocab), s.Sampling, s.Random);
            events[index] = s.Accept(token, cache.MaxContext);
            if (s.IsFinished)
                Release(s);
        }

        return events;
    }

    /// <summary>Frees a sequence's KV row (finished or cancelled).</summary>
    public void Release(SequenceState sequence)
    {
        if (sequence.Kv is KvHandle kv)
        {
            cache.Release(kv);
            sequence.Kv = null;
        }
    }
}
