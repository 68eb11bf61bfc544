using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Index tensors derived once per step from a <see cref="ForwardBatch"/> and shared by every layer. Decode rows
/// (one token) are attended together as one batch; prefill slices one at a time.
/// </summary>
internal sealed class StepIndices : IDisposable
{
    public StepIndices(ForwardBatch batch, ScalarType dtype, Device device)
    {
        int t = batch.TokenCount;
        var slotPerToken = new long[t];
        var decodeTokens = new List<long>();
        var decodeSlots = new List<long>();
        var decodeLengths = new List<int>();
        var prefill = new List<SequenceSlice>();
        foreach (var s in batch.Sequences)
        {
            for (int i = 0; i < s.Count; i++)
                slotPerToken[s.Offset + i] = s.Kv.Slot;
            if (s.Count == 1)
            {
                decodeTokens.Add(s.Offset);
                decodeSlots.Add(s.Kv.Slot);
                decodeLengths.Add(s.EndPosition);
            }
            else
            {
                prefill.Add(s);
            }
        }

        Tokens = tensor(batch.Tokens.Select(x => (long)x).ToArray(), ScalarType.Int64, device);
        Positions = tensor(batch.Positions.Select(x => (long)x).ToArray(), ScalarType.Int64, device);
        SlotPerToken = tensor(slotPerToken, ScalarType.Int64, device);
        LastTokens = tensor(batch.Sequences.Select(s => (long)(s.Offset + s.Count - 1)).ToArray(), ScalarType.Int64, device);
        Prefill = prefill;
        AllDecode = prefill.Count == 0;
        DecodeCount = decodeTokens.Count;
        if (DecodeCount > 0)
        {
            DecodeTokens = tensor(decodeTokens.ToArray(), ScalarType.Int64, device);
            DecodeContext = decodeLengths.Max();
            long first = decodeSlots[0];
            DecodeSlotsContiguousFrom = decodeSlots.Select((s, i) => s == first + i).All(x => x) ? (int)first : null;
            DecodeSlots = tensor(decodeSlots.ToArray(), ScalarType.Int64, device);
            if (decodeLengths.Any(l => l != DecodeContext))
            {
                // Additive mask [B, 1, 1, L]: 0 where the column is inside the sequence, −∞ beyond its end.
                var mask = new float[DecodeCount * DecodeContext];
                for (int b = 0; b < DecodeCount; b++)
                    for (int j = decodeLengths[b]; j < DecodeContext; j++)
                        mask[b * DecodeContext + j] = float.NegativeInfinity;
                using var maskF32 = tensor(mask, [DecodeCount, 1, 1, DecodeContext]);
                DecodeMask = maskF32.to(dtype, device);
            }
        }
    }

    public Tensor Tokens { get; }          // [T] int64
    public Tensor Positions { get; }       // [T] int64
    public Tensor SlotPerToken { get; }    // [T] int64
    public Tensor LastTokens { get; }      // [S] int64, index of each sequence's last token
    public IReadOnlyList<SequenceSlice> Prefill { get; }
    public bool AllDecode { get; }
    public int DecodeCount { get; }
    public Tensor? DecodeTokens { get; }   // [B] int64
    public Tensor? DecodeSlots { get; }    // [B] int64
    public int? DecodeSlotsContiguousFrom { get; }
    public int DecodeContext { get; }      // max context length over decode rows
    public Tensor? DecodeMask { get; }     // [B, 1, 1, L] additive, compute dtype; null when all decode rows have the same length

    public void Dispose()
    {
        Tokens.Dispose();
        Positions.Dispose();
        SlotPerToken.Dispose();
        LastTokens.Dispose();
        DecodeTokens?.Dispose();
        DecodeSlots?.Dispose();
        DecodeMask?.Dispose();
    }
}
