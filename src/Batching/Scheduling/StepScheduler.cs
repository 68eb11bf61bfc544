using System.Collections.Concurrent;
using Serving.Batching.PrefixCaching;
using Serving.Contracts;
using Serving.Contracts.Configuration;

namespace Serving.Batching.Scheduling;

/// <summary>
/// The continuous-batching scheduler: every engine step it decides which sequences run, how many tokens each feeds, and with
/// which adapter slots, and hands the engine a <see cref="StepPlan"/>. No tensors: only lengths, blocks and slots.
/// <list type="number">
/// <item>Cancelled and timed-out requests leave first, releasing KV blocks and adapter pins.</item>
/// <item>Running sequences are planned oldest first (most urgent first under priority scheduling), decode rows before
/// prompt chunks; a sequence that needs a KV block when none is free preempts the youngest (least urgent) running
/// sequence (its KV is dropped and recomputed when it resumes).</item>
/// <item>Waiting requests are admitted in arrival order (FCFS; by priority, then arrival, under
/// <see cref="SchedulingPolicy.Priority"/>) while rows, the prefill budget, KV blocks and adapter slots allow; one that
/// cannot get a slot or KV memory waits without holding back the ones behind it, until it has waited
/// <see cref="BatchingOptions.StarvationSteps"/> steps: then nothing behind it is admitted until it runs. Under priority
/// scheduling a request that lacks a row or KV memory preempts running requests strictly less urgent than itself, when
/// that is enough to admit it (<see cref="Admission"/>).</item>
/// <item>After each step a sequence's blocks that every KV group's window has passed go back to the pool (sliding layers of
/// gpt-oss, Gemma, Mistral: <see cref="KvLayout"/>).</item>
/// </list>
/// <see cref="TryEnqueue"/> may be called from any thread; everything else runs on the engine loop.
/// </summary>
public sealed class StepScheduler
{
    private readonly BatchingOptions _options;
    private readonly IAdapterSlotProvider _adapters;
    private readonly TimeProvider _time;
    private readonly KvBlockAllocator _kv;
    private readonly PrefixCache _prefixes;
    private readonly RequestOrder _order;
    private readonly ConcurrentQueue<ScheduledRequest> _incoming = new();
    private readonly WaitingQueue _waiting;
    private readonly RunningSet _running = new();
    private readonly WorkSignal _signal = new();
    private readonly Admission _admission;
    private long _arrivals;
    private volatile bool _closed;

    /// <param name="options">Batching options (validated here).</param>
    /// <param name="maxSequences">Sequences run together at most.</param>
    /// <param name="maxContext">Longest sequence.</param>
    /// <param name="adapters">The engine's adapter slots.</param>
    /// <param name="time">The clock of deadlines and timeouts.</param>
    /// <param name="kvGroups">The model's KV groups (default: one whole-context group). The pool holds
    /// <see cref="BatchingOptions.KvCacheTokens"/> tokens of every layer's KV, or by default what <paramref name="maxSequences"/>
    /// sequences of <paramref name="maxContext"/> hold at once.</param>
    public StepScheduler(BatchingOptions options, int maxSequences, int maxContext, IAdapterSlotProvider adapters, TimeProvider time,
        KvCacheGroups? kvGroups = null)
    {
        var errors = options.Validate().ToList();
        if (errors.Count > 0)
            throw new ArgumentException(string.Join("; ", errors));
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxContext, 2);
        _options = options;
        _adapters = adapters;
        _time = time;
        MaxSequences = maxSequences;
        MaxContext = maxContext;
        KvGroups = kvGroups;
        var layout = new KvLayout(options.KvBlockSize, kvGroups?.Windows ?? [null]);
        // One sequence at the max context, fed a step's prefill budget at a time, holds at most this many blocks.
        int chunk = options.MaxPrefillTokensPerStep > 0 ? options.MaxPrefillTokensPerStep : maxContext;
        int perSequence = layout.MostHeld(maxContext, chunk);
        int blocks = options.KvCacheTokens > 0 ? PoolFor(options.KvCacheTokens, layout, kvGroups) : layout.PoolFor(maxSequences, maxContext, chunk);
        _kv = new KvBlockAllocator(blocks, layout);
        _prefixes = new PrefixCache(_kv, options.PrefixCaching);
        _order = new RequestOrder(options.SchedulingPolicy);
        _waiting = new WaitingQueue(_order.Waiting);
        _admission = new Admission(options, maxSequences, _kv, _prefixes, _order, _waiting, _running, adapters, Preempt);
        if (perSequence > blocks)
            throw new ArgumentException($"the KV cache ({blocks} blocks of {layout.BlockSize} tokens) cannot hold one sequence of the max context {maxContext}");
    }

    /// <summary>
    /// Blocks of the memory <paramref name="tokens"/> positions of every layer take (<c>--kv-cache-tokens</c>): a block of a
    /// group holds G of the model's layers, so the same memory holds layers / G times as many.
    /// </summary>
    private static int PoolFor(int tokens, KvLayout layout, KvCacheGroups? groups)
    {
        long layers = groups?.Layers.Sum(g => g.Count) ?? 1, perBlock = groups?.LayersPerGroup ?? 1;
        return (int)Math.Min(int.MaxValue, (layout.BlocksFor(tokens) * layers + perBlock - 1) / perBlock);
    }

    /// <summary>The model's KV groups the tables follow; null: one whole-context group.</summary>
    public KvCacheGroups? KvGroups { get; }

    public int MaxSequences { get; }
    public int MaxContext { get; }
    public KvBlockAllocator Kv => _kv;
    public int Running => _running.Count;

    /// <summary>Requests queued and not running (thread-safe).</summary>
    public int Waiting => _waiting.Count;

    public long QueuedTokens => _waiting.Tokens;
    public long Preemptions { get; private set; }

    /// <summary>Prompt tokens looked up in the prefix cache at admissions (vLLM's <c>prefix_cache_queries</c>; thread-safe).</summary>
    public long PrefixCacheQueries => _prefixes.Queries;

    /// <summary>Of those, tokens whose KV was reused (vLLM's <c>prefix_cache_hits</c>; thread-safe).</summary>
    public long PrefixCacheHits => _prefixes.Hits;
    public IReadOnlyList<ScheduledRequest> RunningRequests => _running;

    /// <summary>Queued requests in admission order (engine loop only; arrivals not yet planned are not included).</summary>
    public IReadOnlyList<ScheduledRequest> WaitingRequests => _waiting.Items;

    /// <summary>Queues a request, or refuses it at once when the queue is at its limit (the caller answers 429).</summary>
    public EnqueueOutcome TryEnqueue(ScheduledRequest request)
    {
        if (_closed)
            return EnqueueOutcome.Closed;
        // A burst that the batch has free seats for is not "queued" in the sense of the limit: those requests are admitted
        // at the next step. Without this a burst larger than MaxQueuedRequests is partly refused by an idle server.
        int freeSeats = Math.Max(0, MaxSequences - _running.Snapshot);
        if (_waiting.TryReserve(request.PromptTokens, (long)_options.MaxQueuedRequests + freeSeats, _options.MaxQueuedTokens) is var reserved
            && reserved != EnqueueOutcome.Accepted)
            return reserved;

        if (_options.RequestTimeoutSeconds > 0)
        {
            var limit = _time.GetUtcNow() + TimeSpan.FromSeconds(_options.RequestTimeoutSeconds);
            if (request.Deadline is null || request.Deadline > limit)
                request.Deadline = limit;
        }

        request.Blocks = new SequenceBlocks(_kv.Layout.GroupCount);
        request.Arrival = Interlocked.Increment(ref _arrivals);
        request.AbortRegistration = request.Aborted.UnsafeRegister(static s => ((WorkSignal)s!).Set(), _signal);
        _incoming.Enqueue(request);
        _signal.Set();
        return EnqueueOutcome.Accepted;
    }

    /// <summary>Plans the next step. Never blocks; an empty plan carries the task to wait on.</summary>
    public StepPlan PlanStep()
    {
        var wake = _signal.Capture();
        var now = _time.GetUtcNow();
        while (_incoming.TryDequeue(out var arrived))
            _waiting.Insert(arrived);

        var ended = new List<RequestEnded>();
        RemoveAbortedAndExpired(now, ended);

        int budget = _options.MaxPrefillTokensPerStep > 0 ? _options.MaxPrefillTokensPerStep : int.MaxValue;
        var preempted = new List<RequestId>();
        var tokens = PlanRunning(ref budget, preempted);
        var started = new List<RequestStarted>();
        var loads = new List<Task>();
        // A step that preempted admits nothing, so nothing queued behind the preempted sequence overtakes it (as vLLM's).
        if (preempted.Count == 0)
            _admission.Admit(ref budget, tokens, started, loads, ended, preempted);

        var rows = new List<PlannedRow>();
        foreach (var r in _running)
            if (tokens.TryGetValue(r.Id, out int n))
            {
                int drafts = Math.Max(0, r.Computed + n - r.Length);
                rows.Add(new PlannedRow(r.Id, r.Computed, n, r.Computed + n - drafts == r.Length, r.Blocks.Snapshot(), drafts));
            }

        if (rows.Count == 0)
        {
            var delay = RequestDeadlines.Next(_waiting.Items.Concat(_running)) is DateTimeOffset d
                ? Task.Delay((d > now ? d - now : TimeSpan.Zero) + TimeSpan.FromMilliseconds(1), _time) : null;
            wake = Task.WhenAny([wake, .. loads, .. delay is null ? Array.Empty<Task>() : [delay]]);
        }

        return new StepPlan(rows, started, preempted, ended, wake);
    }

    /// <summary>Records what the engine did with <paramref name="plan"/>'s rows; finished sequences release everything.</summary>
    public void CompleteStep(StepPlan plan, IReadOnlyList<RowResult> results)
    {
        if (results.Count != plan.Rows.Count)
            throw new ArgumentException($"{results.Count} results for {plan.Rows.Count} planned rows");
        for (int i = 0; i < plan.Rows.Count; i++)
        {
            var row = plan.Rows[i];
            var r = _running.Find(row.Id) ?? throw new InvalidOperationException($"{row.Id} is not running");
            if (results[i].Failed)
            {
                End(r);
                continue;
            }

            int accepted = results[i].AcceptedDrafts;
            if (accepted < 0 || accepted > row.DraftTokens || (accepted > 0 && !results[i].EmittedToken))
                throw new ArgumentException($"{row.Id}: {accepted} drafts accepted of {row.DraftTokens} planned");
            // Accepted drafts are tokens of the sequence now, and their KV was written with them; the rest is not counted.
            r.Computed += row.SequenceTokens + accepted;
            if (results[i].EmittedToken)
                r.Length += 1 + accepted;
            _prefixes.CacheFullBlocks(r);
            if (results[i].Finished || r.Length >= MaxContext)
                End(r);
            else
                _kv.ReleaseBehind(r.Blocks, r.Computed);
        }
    }

    /// <summary>The step of <paramref name="plan"/> failed: its requests end (the engine fails their streams).</summary>
    public void FailStep(StepPlan plan)
    {
        foreach (var row in plan.Rows)
            if (_running.Find(row.Id) is ScheduledRequest r)
                End(r);
    }

    /// <summary>Refuses new requests and ends every queued and running one; returns their ids.</summary>
    public IReadOnlyList<RequestId> Close()
    {
        _closed = true;
        while (_incoming.TryDequeue(out var arrived))
            _waiting.Insert(arrived);
        var all = _running.Concat(_waiting.Items).Select(r => r.Id).ToList();
        foreach (var r in _running.ToList())
            End(r);
        foreach (var r in _waiting.Items.ToList())
            End(r);
        return all;
    }

    private void RemoveAbortedAndExpired(DateTimeOffset now, List<RequestEnded> ended)
    {
        foreach (var (r, cause) in RequestDeadlines.Leaving(_running.Concat(_waiting.Items), now))
        {
            End(r);
            ended.Add(new RequestEnded(r.Id, cause, cause == EndCause.TimedOut ? new TimeoutException($"{r.Id} passed its deadline") : null));
        }
    }

    /// <summary>Tokens per running sequence this step (decode rows first, then prompt chunks), preempting when KV runs out.</summary>
    private Dictionary<RequestId, int> PlanRunning(ref int budget, List<RequestId> preempted)
    {
        var tokens = new Dictionary<RequestId, int>();
        var feeding = _order.Feeding(_running).ToList();
        var order = feeding.Where(r => r.Length - r.Computed == 1).Concat(feeding.Where(r => r.Length - r.Computed > 1)).ToList();
        foreach (var r in order)
        {
            if (r.Phase != RequestPhase.Running)
                continue;                                   // preempted earlier in this loop
            int remaining = r.Length - r.Computed;
            int n = remaining == 1 ? 1 : Math.Min(remaining, budget);
            if (n <= 0)
                continue;
            if (remaining == 1 && DraftsFor(r) is int drafts and > 0)
            {
                _kv.TryGrow(r.Blocks, r.Computed + 1 + drafts);
                tokens[r.Id] = 1 + drafts;
                continue;
            }

            if (!ReserveFor(r, n, preempted))
                continue;
            if (remaining > 1)
                budget -= n;
            tokens[r.Id] = n;
        }

        return tokens;
    }

    /// <summary>
    /// Drafts a decode row of <paramref name="r"/> can carry this step: what the engine proposed, inside the context limit, and
    /// only when the blocks they need are free now (cached prefixes no one holds count as free, as for every allocation).
    /// Speculation never preempts: a row whose drafts do not fit runs without them.
    /// </summary>
    private int DraftsFor(ScheduledRequest r)
    {
        int drafts = Math.Min(r.DraftTokens, MaxContext - r.Length - 1);
        while (drafts > 0 && _kv.Needed(r.Blocks, r.Computed + 1 + drafts) > _kv.FreeBlocks)
            drafts--;
        return drafts;
    }

    /// <summary>Reserves the blocks <paramref name="r"/> needs to cache n more tokens, preempting younger sequences (or itself).</summary>
    private bool ReserveFor(ScheduledRequest r, int n, List<RequestId> preempted)
    {
        int need = _kv.Needed(r.Blocks, r.Computed + n);
        while (need > _kv.FreeBlocks)
        {
            // Never r alone: the constructor guarantees one sequence of MaxContext tokens fits the whole cache.
            var victim = _order.FirstVictim(_running);
            Preempt(victim);
            _waiting.Requeue(victim);
            preempted.Add(victim.Id);
            if (victim == r)
                return false;
        }

        _kv.TryGrow(r.Blocks, r.Computed + n);
        return true;
    }

    /// <summary>Takes a running request out of the batch with nothing computed; the caller queues it again.</summary>
    private void Preempt(ScheduledRequest r)
    {
        Preemptions++;
        r.Preemptions++;
        ReleaseHoldings(r);
        r.Computed = 0;
        r.CachedPromptTokens = 0;
        r.Phase = RequestPhase.Waiting;
    }

    private void End(ScheduledRequest r)
    {
        if (r.Phase == RequestPhase.Running)
            ReleaseHoldings(r);
        else if (r.Phase == RequestPhase.Waiting)
            _waiting.Remove(r);

        r.Phase = RequestPhase.Ended;
        r.AbortRegistration.Dispose();
    }

    /// <summary>Takes a running request out of the batch and gives back its KV blocks and adapter slots.</summary>
    private void ReleaseHoldings(ScheduledRequest r)
    {
        _running.Remove(r);
        _kv.Release(r.Blocks);
        if (r.Slots.Count > 0)
            _adapters.Release(r.Slots);
        r.Slots = [];
    }

}
