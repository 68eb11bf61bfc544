using System.Runtime.InteropServices;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Generation;

/// <summary>
/// Advances a set of sequences by one token each with a single forward pass: new sequences are prefilled, running
/// ones decode, all in the same packed batch. Assigns KV rows on first use and releases them when a sequence finishes.
/// </summary>
internal sealed class GenerationStepper(LlamaModel model, KvCache cache)
{
    public LlamaModel Model => model;
    public KvCache Cache => cache;

    public IReadOnlyList<TokenEvent> Step(IReadOnlyList<SequenceState> sequences)
    {
        var active = sequences.Where(s => !s.IsFinished).ToList();
        if (active.Count == 0)
            return [];
        foreach (var s in active)
        {
            if (s.TotalTokens >= cache.MaxContext)
                throw new ArgumentException($"sequence of {s.TotalTokens} tokens does not fit the context limit {cache.MaxContext}");
            s.Kv ??= cache.Allocate();
        }

        var batch = ForwardBatch.Create(active.Select(s => (s.Kv!.Value, s.PendingTokens(), s.CachedTokens)).ToList());
        var lora = active.Any(s => s.Adapters.Count > 0)
            ? LoraBatchMapping.ForSequences(batch.Sequences.Select(s => s.Count).ToList(), active.Select(s => s.Adapters).ToList())
            : null;
        using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, lora);
        using var cpu = logits.device.type == DeviceType.CPU ? logits.alias() : logits.cpu();
        var rows = MemoryMarshal.Cast<byte, float>(cpu.bytes);
        int vocab = (int)cpu.shape[1];
        var events = new TokenEvent[active.Count];
        for (int i = 0; i < active.Count; i++)
        {
            var s = active[i];
            s.CachedTokens = s.TotalTokens;
            var token = TokenSampler.Sample(rows.Slice(i * vocab, vocab), s.Sampling, s.Random);
            events[i] = s.Accept(token, cache.MaxContext);
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
