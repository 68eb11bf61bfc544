using Serving.Contracts;

namespace Serving.Engine.Lora;

/// <summary>
/// Which adapters apply to each token row of one step, built once per step and shared by every layer: row t gets
/// <c>Σ weight · scale_slot · B_slot·(A_slot·x)</c> over its entries. Stored as CSR (<see cref="RowStart"/> has
/// T + 1 entries); rows without entries run on the base model only. Immutable.
/// </summary>
public sealed class LoraBatchMapping
{
    private LoraBatchMapping(int[] rowStart, int[] slots, float[] weights)
    {
        RowStart = rowStart;
        EntrySlots = slots;
        EntryWeights = weights;
        var groups = new SortedDictionary<int, (List<int> Rows, List<float> Weights)>();
        for (int t = 0; t + 1 < rowStart.Length; t++)
            for (int e = rowStart[t]; e < rowStart[t + 1]; e++)
            {
                if (!groups.TryGetValue(slots[e], out var g))
                    groups[slots[e]] = g = ([], []);
                g.Rows.Add(t);
                g.Weights.Add(weights[e]);
            }

        Groups = groups.Select(kv => new LoraSlotGroup(kv.Key, kv.Value.Rows.ToArray(), kv.Value.Weights.ToArray())).ToArray();
        RowsBySlot = Groups.SelectMany(g => g.Rows).Distinct().ToArray();

        // Segments: runs of ≥ SegmentRows consecutive rows with the same entries (a prefill chunk), one group per entry.
        var segments = new List<LoraSlotGroup>();
        var inSegment = new bool[rowStart.Length - 1];
        for (int first = 0, next; first < inSegment.Length; first = next)
        {
            for (next = first + 1; next < inSegment.Length && SameEntries(rowStart, slots, weights, first, next); next++)
            {
            }

            if (next - first < SegmentRows || rowStart[first + 1] == rowStart[first])
                continue;
            var rows = Enumerable.Range(first, next - first).ToArray();
            for (int e = rowStart[first]; e < rowStart[first + 1]; e++)
                segments.Add(new LoraSlotGroup(slots[e], rows, Enumerable.Repeat(weights[e], rows.Length).ToArray()));
            Array.Fill(inSegment, true, first, next - first);
        }

        SegmentGroups = segments;
        RowKernelRows = RowsBySlot.Where(t => !inSegment[t]).ToArray();

        // Rows with exactly one adapter go four at a time when they share it (a slot's leftover rows one at a time: blocks
        // padded from two or three rows measured no faster). Items stay in slot order, so a slot's blocks and single rows
        // run one after another while its weights are cached.
        var items = new List<int[]>();
        var runs = new List<int[]>();
        foreach (var run in RowKernelRows.GroupBy(t => rowStart[t + 1] - rowStart[t] == 1 ? slots[rowStart[t]] : -1 - t))
        {
            var rows = run.ToArray();
            int i = 0;
            if (run.Key >= 0)
                for (; i + BlockRows <= rows.Length; i += BlockRows)
                    items.Add(rows[i..(i + BlockRows)]);
            for (; i < rows.Length; i++)
                items.Add([rows[i]]);
            for (int r = 0; r < rows.Length; r += RunRows)
                runs.Add(rows[r..Math.Min(rows.Length, r + RunRows)]);
        }

        RowKernelItems = items;
        SlotRuns = runs;
    }

    /// <summary>Most rows in one run of <see cref="SlotRuns"/>.</summary>
    public const int RunRows = 16;

    /// <summary>
    /// The same work as <see cref="RowKernelItems"/> in larger pieces, for a kernel that takes any number of rows sharing one
    /// adapter (LoraNative): each slot's rows with exactly one entry in runs of up to <see cref="RunRows"/>, which read the
    /// slot's weights once per run instead of once per block of four; mixtures one row each. Slot order.
    /// </summary>
    public IReadOnlyList<int[]> SlotRuns { get; }

    /// <summary>Rows per block of <see cref="RowKernelItems"/>.</summary>
    public const int BlockRows = 4;

    /// <summary>
    /// The row kernel's work, in slot order: blocks of <see cref="BlockRows"/> rows that each have one entry, all for the
    /// same slot, and single rows (length 1: mixtures, and the rows a slot has beyond whole blocks).
    /// </summary>
    public IReadOnlyList<int[]> RowKernelItems { get; }

    /// <summary>
    /// Runs of at least this many consecutive rows with the same entries (long prefill chunks) are applied as segments
    /// (GEMMs); all other rows row by row. Decode rows that share an adapter are not merged into a segment: gathering
    /// them for a GEMM costs more libtorch calls per projection than the row kernel spends on them. The crossover, bench
    /// preset, LoRA kernel alone on 8 prompts of one adapter each (all 56 projections; `bench lora` shapes): bf16 segments
    /// vs row kernel 105 vs 59 ms at 128 rows each, 198 vs 119 at 256, 291 vs 276 at 512, 451 vs 472 at 1024; f32 87 vs
    /// 64, 171 vs 137, 202 vs 187, 412 vs 452. (It was 96 rows before the row kernel's shrink loops were made 1.5× faster.)
    /// </summary>
    public const int SegmentRows = 512;

    /// <summary>Contiguous row ranges (one group per entry of the range's rows), each with a single weight.</summary>
    public IReadOnlyList<LoraSlotGroup> SegmentGroups { get; }

    /// <summary>Rows with entries that are not in a segment, ordered by slot: the row kernel's work list (all their entries).</summary>
    public IReadOnlyList<int> RowKernelRows { get; }

    public IReadOnlyList<int> RowStart { get; }
    public IReadOnlyList<int> EntrySlots { get; }
    public IReadOnlyList<float> EntryWeights { get; }
    public int TokenCount => RowStart.Count - 1;
    public bool IsEmpty => EntrySlots.Count == 0;

    /// <summary>Rows grouped by slot (slot ascending): for kernels that read each adapter once per step.</summary>
    public IReadOnlyList<LoraSlotGroup> Groups { get; }

    /// <summary>Rows that have at least one adapter, ordered so rows sharing an adapter are adjacent.</summary>
    public IReadOnlyList<int> RowsBySlot { get; }

    private static bool SameEntries(int[] rowStart, int[] slots, float[] weights, int a, int b)
    {
        int n = rowStart[a + 1] - rowStart[a];
        if (rowStart[b + 1] - rowStart[b] != n)
            return false;
        for (int i = 0; i < n; i++)
            if (slots[rowStart[a] + i] != slots[rowStart[b] + i] || weights[rowStart[a] + i] != weights[rowStart[b] + i])
                return false;
        return true;
    }

    /// <summary>
    /// This mapping's <paramref name="rows"/>, in that order, as the rows of a mapping of their own, keeping the entries
    /// whose slot <paramref name="keep"/> accepts (a mixture of experts' expert runs on the rows routed to it, adapted by
    /// the slots that adapt it); null when no entry is kept.
    /// </summary>
    public LoraBatchMapping? Subset(IReadOnlyList<int> rows, Func<int, bool> keep)
    {
        var rowStart = new int[rows.Count + 1];
        var slots = new List<int>();
        var weights = new List<float>();
        for (int i = 0; i < rows.Count; i++)
        {
            for (int e = RowStart[rows[i]]; e < RowStart[rows[i] + 1]; e++)
                if (keep(EntrySlots[e]))
                {
                    slots.Add(EntrySlots[e]);
                    weights.Add(EntryWeights[e]);
                }

            rowStart[i + 1] = slots.Count;
        }

        return slots.Count == 0 ? null : new LoraBatchMapping(rowStart, [.. slots], [.. weights]);
    }

    /// <summary>
    /// Builds the mapping for a packed batch: <paramref name="perSequence"/>[i] lists the (slot, weight) pairs of
    /// sequence i (empty = base model), applied to all of its tokens.
    /// </summary>
    public static LoraBatchMapping ForSequences(IReadOnlyList<int> tokensPerSequence, IReadOnlyList<IReadOnlyList<AdapterSlotWeight>> perSequence)
    {
        if (tokensPerSequence.Count != perSequence.Count)
            throw new ArgumentException("one adapter list per sequence is required");
        var rowStart = new List<int> { 0 };
        var slots = new List<int>();
        var weights = new List<float>();
        for (int s = 0; s < perSequence.Count; s++)
        {
            // Indexed loops, no sets: a sequence has a handful of entries, and this runs for every row of every step.
            var entries = perSequence[s];
            for (int i = 0; i < entries.Count; i++)
            {
                var (slot, weight) = entries[i];
                if (slot < 0 || !float.IsFinite(weight))
                    throw new ArgumentException($"sequence {s}: invalid adapter entry (slot {slot}, weight {weight})");
                for (int j = 0; j < i; j++)
                    if (entries[j].Slot == slot)
                        throw new ArgumentException($"sequence {s} lists the same adapter slot twice");
            }

            for (int t = 0; t < tokensPerSequence[s]; t++)
            {
                for (int i = 0; i < entries.Count; i++)
                {
                    slots.Add(entries[i].Slot);
                    weights.Add(entries[i].Weight);
                }

                rowStart.Add(slots.Count);
            }
        }

        return new LoraBatchMapping(rowStart.ToArray(), slots.ToArray(), weights.ToArray());
    }
}
