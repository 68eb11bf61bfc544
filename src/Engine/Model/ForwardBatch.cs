namespace Serving.Engine.Model;

/// <summary>
/// The input of one forward step: tokens of several sequences packed back to back (variable lengths, prefill and
/// decode rows mixed), their positions, and the sequence layout with each sequence's KV block table. Immutable; built
/// once per step. Invariants (checked by <see cref="Create"/>): slices cover the tokens in order without gaps and
/// positions within a slice are consecutive.
/// </summary>
public sealed class ForwardBatch
{
    private ForwardBatch(int[] tokens, int[] positions, SequenceSlice[] sequences)
    {
        Tokens = tokens;
        Positions = positions;
        Sequences = sequences;
    }

    public IReadOnlyList<int> Tokens { get; }
    public IReadOnlyList<int> Positions { get; }
    public IReadOnlyList<SequenceSlice> Sequences { get; }
    public int TokenCount => Tokens.Count;

    /// <summary>Packs <paramref name="sequences"/> (KV block table, tokens to feed, position of the first of them).</summary>
    public static ForwardBatch Create(IReadOnlyList<(KvBlockTable Kv, IReadOnlyList<int> Tokens, int StartPosition)> sequences)
    {
        if (sequences.Count == 0)
            throw new ArgumentException("a batch needs at least one sequence");
        int total = sequences.Sum(s => s.Tokens.Count);
        var tokens = new int[total];
        var positions = new int[total];
        var slices = new SequenceSlice[sequences.Count];
        int offset = 0;
        for (int i = 0; i < sequences.Count; i++)
        {
            var (kv, ids, start) = sequences[i];
            if (ids.Count == 0)
                throw new ArgumentException($"sequence {i} has no tokens");
            if (start < 0)
                throw new ArgumentException($"sequence {i} starts at negative position {start}");
            for (int j = 0; j < ids.Count; j++)
            {
                tokens[offset + j] = ids[j];
                positions[offset + j] = start + j;
            }

            slices[i] = new SequenceSlice(kv, offset, ids.Count, start);
            offset += ids.Count;
        }

        return new ForwardBatch(tokens, positions, slices);
    }
}
