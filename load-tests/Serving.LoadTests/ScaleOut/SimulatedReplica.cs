namespace Serving.LoadTests.ScaleOut;

/// <summary>
/// One replica: a FCFS queue, a running batch of at most <c>MaxBatch</c> sequences, and <c>SlotsPerReplica</c>
/// device slots holding adapters (LRU; an adapter is pinned while a running sequence uses it). At each step boundary
/// finished sequences leave, then queued requests are admitted in order while the batch has room and their adapter
/// is resident or a slot can be freed; a request that cannot get a slot waits without blocking later ones.
/// </summary>
internal sealed class SimulatedReplica(int index, ScaleOutOptions options)
{
    private readonly List<SimulatedRequest> _queue = [];
    private readonly List<SimulatedRequest> _running = [];
    private readonly LinkedList<int> _slots = new();   // most recently used first

    public int Index { get; } = index;
    public double StepEndsAtMs { get; private set; } = double.PositiveInfinity;
    public long AdapterLoads { get; private set; }
    public int QueueLength => _queue.Count;
    public int RunningCount => _running.Count;

    /// <summary>Adapters of running sequences (vLLM's <c>running_lora_adapters</c>).</summary>
    public HashSet<int> RunningAdapters => [.. _running.Select(r => r.Adapter)];

    /// <summary>Adapters of queued requests (vLLM's <c>waiting_lora_adapters</c>).</summary>
    public HashSet<int> WaitingAdapters => [.. _queue.Select(r => r.Adapter)];

    public int MaxAdapters => options.SlotsPerReplica;

    public void Enqueue(SimulatedRequest request, double nowMs)
    {
        _queue.Add(request);
        if (double.IsPositiveInfinity(StepEndsAtMs))
            StartStep(nowMs);
    }

    /// <summary>Ends the step due at <see cref="StepEndsAtMs"/>: one token per running sequence; returns the finished ones.</summary>
    public List<SimulatedRequest> EndStep()
    {
        double now = StepEndsAtMs;
        var finished = new List<SimulatedRequest>();
        foreach (var r in _running)
        {
            if (double.IsNaN(r.FirstTokenMs))
                r.FirstTokenMs = now;
            if (--r.Remaining == 0)
            {
                r.FinishedMs = now;
                finished.Add(r);
            }
        }

        _running.RemoveAll(r => r.Remaining == 0);
        StartStep(now);
        return finished;
    }

    private void StartStep(double nowMs)
    {
        int loads = 0;
        for (int i = 0; i < _queue.Count && _running.Count < options.MaxBatch;)
        {
            var request = _queue[i];
            if (TryAcquireSlot(request.Adapter, ref loads))
            {
                _queue.RemoveAt(i);
                _running.Add(request);
            }
            else
            {
                i++;
            }
        }

        if (_running.Count == 0)
        {
            StepEndsAtMs = double.PositiveInfinity;
            return;
        }

        int distinct = _running.Select(r => r.Adapter).Distinct().Count();
        StepEndsAtMs = nowMs + options.StepBaseMs + options.StepPerSequenceMs * _running.Count + options.StepPerAdapterMs * distinct + options.AdapterLoadMs * loads;
    }

    private bool TryAcquireSlot(int adapter, ref int loads)
    {
        if (_slots.Find(adapter) is { } node)
        {
            _slots.Remove(node);
            _slots.AddFirst(node);
            return true;
        }

        if (_slots.Count >= options.SlotsPerReplica)
        {
            var pinned = RunningAdapters;
            var victim = _slots.Last;
            while (victim is not null && pinned.Contains(victim.Value))
                victim = victim.Previous;
            if (victim is null)
                return false;
            _slots.Remove(victim);
        }

        _slots.AddFirst(adapter);
        AdapterLoads++;
        loads++;
        return true;
    }
}
