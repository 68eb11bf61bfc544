using Serving.Batching.PrefixCaching;
using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// One request as the scheduler sees it: lengths, adapters, tenant, deadline. The tokens themselves stay with the engine.
/// Fields under "scheduler state" are written only by <see cref="StepScheduler"/> on the engine loop.
/// </summary>
public sealed class ScheduledRequest
{
    /// <param name="id">Unique id.</param>
    /// <param name="tenant">Whose request it is (per-tenant limits); empty for anonymous.</param>
    /// <param name="adapters">Adapters it runs with.</param>
    /// <param name="promptTokens">Prompt length (≥ 1).</param>
    /// <param name="deadline">When it must end at the latest; null = no deadline beyond the configured timeout.</param>
    /// <param name="aborted">Signalled when the caller goes away.</param>
    /// <param name="promptBlockKeys">Keys of the prompt's full KV blocks (<see cref="PrefixKeyChain"/>); none: nothing is reused or cached
    /// unless the engine appends keys as the sequence grows.</param>
    /// <param name="priority">Under <see cref="SchedulingPolicy.Priority"/>, lower is more urgent (vLLM's <c>priority</c>); ignored first come, first served.</param>
    public ScheduledRequest(RequestId id, string tenant, AdapterMix adapters, int promptTokens, DateTimeOffset? deadline, CancellationToken aborted,
        IReadOnlyList<PrefixBlockKey>? promptBlockKeys = null, int priority = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(promptTokens, 1);
        Id = id;
        Tenant = tenant;
        Adapters = adapters;
        PromptTokens = promptTokens;
        Deadline = deadline;
        Aborted = aborted;
        Length = promptTokens;
        Priority = priority;
        _blockKeys = [.. promptBlockKeys ?? []];
    }

    public RequestId Id { get; }
    public string Tenant { get; }
    public AdapterMix Adapters { get; }
    public int PromptTokens { get; }
    public int Priority { get; }
    public DateTimeOffset? Deadline { get; internal set; }
    public CancellationToken Aborted { get; }

    /// <summary>
    /// Keys of the sequence's full blocks known so far, in order: block i may be reused from, and once written is cached
    /// under, key i. The prompt's come with the request; the engine appends the keys of blocks its generated tokens fill
    /// (<see cref="AppendBlockKey"/>), so a later turn of a chat, or the request itself after a preemption, reuses them.
    /// </summary>
    public IReadOnlyList<PrefixBlockKey> BlockKeys => _blockKeys;

    private readonly List<PrefixBlockKey> _blockKeys;

    /// <summary>The key of the next full block (block <see cref="BlockKeys"/>.Count), from the engine loop.</summary>
    public void AppendBlockKey(PrefixBlockKey key) => _blockKeys.Add(key);

    /// <summary>
    /// Speculative tokens the engine has proposed to follow the sequence (n-gram lookup, a predicted output), written by the
    /// engine loop between steps. A decode row carries up to this many when the KV memory for them is free without preempting
    /// anyone and they stay inside the context limit (<see cref="PlannedRow.DraftTokens"/>).
    /// </summary>
    public int DraftTokens
    {
        get => _draftTokens;
        set => _draftTokens = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), "draft tokens cannot be negative");
    }

    private int _draftTokens;

    // scheduler state
    public RequestPhase Phase { get; internal set; } = RequestPhase.Waiting;

    /// <summary>Arrival order; the waiting queue is sorted by it (after priority, under priority scheduling), so a preempted request returns to its place.</summary>
    public long Arrival { get; internal set; }

    /// <summary>Admission order of the current run; preemption takes the highest (youngest) first, among the least urgent.</summary>
    public long Admission { get; internal set; }

    /// <summary>Tokens of the sequence so far: prompt plus generated.</summary>
    public int Length { get; internal set; }

    /// <summary>Tokens whose KV is in the cache: the one record of a sequence's cached position.</summary>
    public int Computed { get; internal set; }

    /// <summary>Prompt tokens of the current run whose KV came from the prefix cache (whole blocks, never the last prompt token).</summary>
    public int CachedPromptTokens { get; internal set; }

    /// <summary>Leading blocks of <see cref="Blocks"/> already cached under their keys in this run.</summary>
    internal int RegisteredBlocks { get; set; }

    /// <summary>
    /// The sequence's block tables, one per KV group: position p's KV lives in block <c>Blocks[g][p / BlockSize]</c>, ids from the
    /// <see cref="KvBlockAllocator"/>. Shaped by the scheduler's layout when the request is queued.
    /// </summary>
    internal SequenceBlocks Blocks { get; set; } = new(1);
    public IReadOnlyList<AdapterSlotWeight> Slots { get; internal set; } = [];

    /// <summary>Steps this request waited while it could have run but for rows, adapter slots or KV memory (the starvation counter).</summary>
    public int BlockedSteps { get; internal set; }

    public int Preemptions { get; internal set; }
    internal CancellationTokenRegistration AbortRegistration { get; set; }
}
