using Microsoft.Extensions.Time.Testing;
using Serving.Batching.PrefixCaching;
using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Contracts.Configuration;

namespace Serving.Batching.Tests.Scheduling;

/// <summary>
/// Drives a <see cref="StepScheduler"/> the way the engine loop does, without a model: each planned row that emits a token
/// generates one, and a request finishes after its own number of output tokens. Every step checks the invariants the real
/// engine relies on (rows within limits, positions continuing where the KV cache ends, blocks and slots accounted, a block
/// written only by the one sequence holding it and never once cached) and keeps a fake KV store: each written block
/// records the prefix key (or the sequence and block index) and KV group of what was written into it, a reused block must
/// hold exactly the reusing prompt's prefix, and every block a row attends to must still hold its own sequence's KV — so
/// a sliding group's block released and handed to another sequence while its window still reached it fails the run.
/// </summary>
internal sealed class FakeEngine
{
    private readonly Dictionary<RequestId, int> _maxNewTokens = [];
    private readonly Dictionary<RequestId, int> _generated = [];
    private readonly Dictionary<RequestId, int> _cached = [];
    private readonly Dictionary<RequestId, IReadOnlyList<AdapterSlotWeight>> _slots = [];
    private readonly Dictionary<int, BlockContent> _written = [];        // block → what the last write put there
    private readonly Dictionary<RequestId, (List<int> Tokens, PrefixCacheSeed Seed)> _sequences = [];
    private long _nextId;

    /// <summary>What a write put in a block: the KV of block <c>Index</c> of <c>Owner</c>'s sequence for KV group <c>Group</c>, under <c>Key</c> once that block's tokens are known.</summary>
    private readonly record struct BlockContent(RequestId Owner, int Index, int Group, PrefixBlockKey? Key);

    public FakeEngine(BatchingOptions? options = null, int slots = 4, int maxSequences = 8, int maxContext = 256, KvCacheGroups? kvGroups = null)
    {
        Slots = new FakeAdapterSlots(slots);
        Scheduler = new StepScheduler(options ?? new BatchingOptions(), maxSequences, maxContext, Slots, Time, kvGroups);
    }

    private KvLayout Layout => Scheduler.Kv.Layout;

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero));
    public FakeAdapterSlots Slots { get; }
    public StepScheduler Scheduler { get; }
    public int Steps { get; private set; }
    public List<StepPlan> Plans { get; } = [];
    public Dictionary<RequestId, int> StartedAtStep { get; } = [];
    public Dictionary<RequestId, EndCause> Ended { get; } = [];
    public Dictionary<RequestId, int> Generated => _generated;

    /// <summary>
    /// Drafts proposed for every running request after each step (0: no speculation), and how many of a row's d drafts the
    /// "engine" accepts at step s (the default takes a different count each step).
    /// </summary>
    public int DraftsPerStep { get; set; }

    public Func<RequestId, int, int, int> AcceptDrafts { get; set; } = (id, step, drafts) => (int)((id.Value * 7 + step) % (drafts + 1));

    /// <summary>Drafts planned and accepted over the run.</summary>
    public int DraftsPlanned { get; private set; }

    public int DraftsAccepted { get; private set; }

    /// <summary>Prompt tokens each request reused from the prefix cache, over all its runs.</summary>
    public Dictionary<RequestId, int> CachedTokens { get; } = [];

    /// <summary>
    /// Queues a request; with <c>tokens</c> (its length is then the prompt's) it carries the prompt's prefix keys, seeded
    /// with its adapter, tenant and <c>salt</c>.
    /// </summary>
    public RequestId Submit(string? adapter = null, int prompt = 8, int maxNewTokens = 4, string tenant = "", CancellationToken aborted = default,
        DateTimeOffset? deadline = null, EnqueueOutcome expect = EnqueueOutcome.Accepted, IReadOnlyList<int>? tokens = null, string? salt = null,
        int priority = 0)
    {
        var id = new RequestId(++_nextId);
        var mix = adapter is null ? AdapterMix.None : AdapterMix.Single(AdapterId.Parse(adapter));
        var seed = PrefixCacheSeed.Create("fake-model", adapter is null ? [] : [(adapter + "@v1", 1.0)], tenant, salt);
        var keys = tokens is null ? null : PrefixKeyChain.Compute(seed, tokens, Scheduler.Kv.BlockSize);
        if (tokens is not null)
            _sequences[id] = ([.. tokens], seed);
        var outcome = Scheduler.TryEnqueue(new ScheduledRequest(id, tenant, mix, tokens?.Count ?? prompt, deadline, aborted, keys, priority));
        Assert.Equal(expect, outcome);
        _maxNewTokens[id] = maxNewTokens;
        _generated[id] = 0;
        _cached[id] = 0;
        return id;
    }

    /// <summary>Device slots the rows of <paramref name="plan"/> read (each row's request's slots, bound when it started).</summary>
    public int DistinctSlots(StepPlan plan) => plan.Rows.SelectMany(r => _slots[r.Id]).Select(s => s.Slot).Distinct().Count();

    /// <summary>Plans and "runs" one step; returns the plan.</summary>
    public StepPlan Step()
    {
        var plan = Scheduler.PlanStep();
        Plans.Add(plan);
        Steps++;
        foreach (var e in plan.Ended)
            Ended[e.Id] = e.Cause;
        foreach (var id in plan.Preempted)
            _cached[id] = 0;
        foreach (var s in plan.Started)
        {
            StartedAtStep.TryAdd(s.Id, Steps);
            _slots[s.Id] = s.Slots;
            _cached[s.Id] = s.CachedTokens;
            CachedTokens[s.Id] = CachedTokens.GetValueOrDefault(s.Id) + s.CachedTokens;
            var request = Scheduler.RunningRequests.Single(r => r.Id == s.Id);
            Assert.Equal(0, s.CachedTokens % Scheduler.Kv.BlockSize);
            Assert.True(s.CachedTokens < request.Length, "the last token is always computed");
            for (int g = 0; g < Layout.GroupCount; g++)
                for (int b = 0; b < s.CachedTokens / Scheduler.Kv.BlockSize; b++)
                {
                    int block = request.Blocks[g][b];
                    Assert.True(block != SequenceBlocks.Released || b < Layout.FirstHeldBlock(g, s.CachedTokens), $"{s.Id}: reused block {b} of group {g} released");
                    if (block != SequenceBlocks.Released)
                        Assert.Equal((request.BlockKeys[b], g), (_written[block].Key, _written[block].Group));
                }
        }

        Assert.True(plan.Rows.Count <= Scheduler.MaxSequences);
        Assert.True(DistinctSlots(plan) <= Slots.Table.Capacity);
        Assert.Equal(plan.Rows.Count, plan.Rows.Select(r => r.Id).Distinct().Count());
        var results = new List<RowResult>();
        var writtenThisStep = new HashSet<int>();
        foreach (var row in plan.Rows)
        {
            Assert.Equal(_cached[row.Id], row.StartPosition);
            var request = Scheduler.RunningRequests.Single(r => r.Id == row.Id);
            int bs = Scheduler.Kv.BlockSize;
            Assert.Equal(Layout.GroupCount, row.Blocks.Count);
            for (int g = 0; g < Layout.GroupCount; g++)
            {
                var table = row.Blocks[g];
                Assert.True(table.Count * bs >= row.StartPosition + row.TokenCount,
                    $"{row.Id}: {table.Count} blocks of group {g} cannot hold positions up to {row.StartPosition + row.TokenCount}");
                // What the row reads: its window's blocks before the first it writes hold its own sequence's KV (or its cached prefix's).
                for (int b = Layout.FirstHeldBlock(g, row.StartPosition); b < row.StartPosition / bs; b++)
                {
                    Assert.NotEqual(SequenceBlocks.Released, table[b]);
                    var content = _written[table[b]];
                    Assert.Equal(g, content.Group);
                    Assert.True(content.Owner == row.Id && content.Index == b || b < request.BlockKeys.Count && content.Key == request.BlockKeys[b],
                        $"{row.Id} reads block {table[b]} (its block {b} of group {g}), which holds block {content.Index} of {content.Owner}");
                }

                for (int b = row.StartPosition / bs; b <= (row.StartPosition + row.TokenCount - 1) / bs; b++)
                {
                    int block = table[b];
                    Assert.True(writtenThisStep.Add(block), $"block {block} written by two rows");
                    Assert.Equal(1, Scheduler.Kv.References(block));
                    Assert.Null(Scheduler.Kv.KeyOf(block));
                    _written[block] = new BlockContent(row.Id, b, g, b < request.BlockKeys.Count ? request.BlockKeys[b] : null);
                }
            }

            Assert.True(row.StartPosition + row.TokenCount <= Scheduler.MaxContext, $"{row.Id}: positions past the context limit");
            if (row.DraftTokens > 0)
            {
                Assert.True(row.EmitsToken && row.SequenceTokens == 1, "drafts ride on decode rows only");
                Assert.True(row.DraftTokens <= request.DraftTokens);
            }

            bool finished = false;
            int accepted = 0;
            if (row.EmitsToken)
            {
                accepted = Math.Min(AcceptDrafts(row.Id, Steps, row.DraftTokens), _maxNewTokens[row.Id] - _generated[row.Id] - 1);
                for (int t = 0; t <= accepted; t++)
                    Generate(request, request.Length + t);
                _generated[row.Id] += 1 + accepted;
                finished = _generated[row.Id] >= _maxNewTokens[row.Id];
                if (finished)
                    Ended[row.Id] = EndCause.Completed;
            }

            // Accepted drafts were written before their tokens (and so their blocks' keys) were known: the KV is theirs.
            for (int g = 0; g < Layout.GroupCount; g++)
                for (int b = row.StartPosition / bs; b <= (row.StartPosition + row.SequenceTokens + accepted - 1) / bs; b++)
                    _written[row.Blocks[g][b]] = new BlockContent(row.Id, b, g, b < request.BlockKeys.Count ? request.BlockKeys[b] : null);
            DraftsPlanned += row.DraftTokens;
            DraftsAccepted += accepted;
            _cached[row.Id] += row.SequenceTokens + accepted;
            results.Add(new RowResult(row.EmitsToken, finished, AcceptedDrafts: accepted));
        }

        Scheduler.CompleteStep(plan, results);
        var held = Scheduler.RunningRequests.SelectMany(r => r.Blocks.Held).ToList();
        Assert.Equal(held.Distinct().Count(), Scheduler.Kv.UsedBlocks);
        Assert.All(held.GroupBy(b => b), g => Assert.Equal(g.Count(), Scheduler.Kv.References(g.Key)));
        Assert.All(held.GroupBy(b => b).Where(g => g.Count() > 1), g => Assert.NotNull(Scheduler.Kv.KeyOf(g.Key)));   // only cached blocks are shared
        Assert.True(Scheduler.Kv.UsedBlocks <= Scheduler.Kv.TotalBlocks);
        Assert.Equal(Scheduler.RunningRequests.Sum(r => r.Slots.Count), Slots.Table.TotalPins);
        foreach (var r in Scheduler.RunningRequests)
        {
            Assert.Equal(_cached[r.Id], r.Computed);
            for (int g = 0; g < Layout.GroupCount; g++)
                for (int b = 0; b < r.Blocks[g].Count; b++)
                    Assert.True(b < Layout.FirstHeldBlock(g, r.Computed) == (r.Blocks[g][b] == SequenceBlocks.Released),
                        $"{r.Id}: block {b} of group {g} {(r.Blocks[g][b] == SequenceBlocks.Released ? "released inside" : "held behind")} the window at {r.Computed}");
            r.DraftTokens = DraftsPerStep;
        }

        return plan;
    }

    /// <summary>Prompt and generated tokens of a request submitted with tokens.</summary>
    public IReadOnlyList<int> SequenceTokens(RequestId id) => _sequences[id].Tokens;

    /// <summary>
    /// The token a row emits (a function of the sequence so far, like a greedy model), and the keys of the blocks the
    /// sequence now fills, appended as the engine loop does.
    /// </summary>
    private void Generate(ScheduledRequest request, int length)
    {
        if (!_sequences.TryGetValue(request.Id, out var sequence))
            return;
        var tokens = sequence.Tokens;
        Assert.Equal(length, tokens.Count);
        tokens.Add(7 + (tokens.Count * 131 + tokens[^1] * 17) % 5000);
        int bs = Scheduler.Kv.BlockSize;
        while ((request.BlockKeys.Count + 1) * bs <= tokens.Count)
        {
            int b = request.BlockKeys.Count;
            request.AppendBlockKey(PrefixKeyChain.Next(b == 0 ? sequence.Seed.Value : request.BlockKeys[^1].Value, tokens.GetRange(b * bs, bs).ToArray()));
        }
    }

    public void RunUntilIdle(int maxSteps = 10_000)
    {
        for (int i = 0; i < maxSteps; i++)
        {
            if (Scheduler.Running == 0 && Scheduler.Waiting == 0)
                return;
            Step();
        }

        throw new InvalidOperationException($"not idle after {maxSteps} steps: {Scheduler.Running} running, {Scheduler.Waiting} waiting");
    }

    public void AssertDrained()
    {
        Assert.Equal(0, Scheduler.Running);
        Assert.Equal(0, Scheduler.Waiting);
        Assert.Equal(0, Scheduler.QueuedTokens);
        Assert.Equal(0, Scheduler.Kv.UsedBlocks);
        Assert.Equal(0, Slots.Table.TotalPins);
    }
}
