using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Preallocated key/value storage: per layer, K and V of shape <c>[maxSequences, Hkv, maxContext, D]</c> in the compute
/// dtype. A sequence owns one row (its <see cref="KvHandle"/>) for its lifetime; position p of the sequence lives at
/// column p. Allocation never touches the tensors, so a step never allocates cache memory.
/// </summary>
internal sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;
    private readonly Stack<int> _free;
    private readonly bool[] _inUse;

    public KvCache(int layers, int maxSequences, int maxContext, int kvHeads, int headDim, ScalarType dtype, Device device)
    {
        if (maxSequences <= 0 || maxContext <= 0)
            throw new ArgumentOutOfRangeException(nameof(maxSequences), "max sequences and max context must be positive");
        MaxSequences = maxSequences;
        MaxContext = maxContext;
        _keys = new Tensor[layers];
        _values = new Tensor[layers];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = zeros([maxSequences, kvHeads, maxContext, headDim], dtype, device);
            _values[l] = zeros([maxSequences, kvHeads, maxContext, headDim], dtype, device);
        }

        _inUse = new bool[maxSequences];
        _free = new Stack<int>(Enumerable.Range(0, maxSequences).Reverse());
    }

    public int MaxSequences { get; }
    public int MaxContext { get; }
    public int FreeSlots => _free.Count;
    public long TotalBytes => _keys.Concat(_values).Sum(t => t.NumberOfElements * t.ElementSize);

    public KvHandle Allocate()
    {
        if (!_free.TryPop(out int slot))
            throw new InvalidOperationException($"KV cache full: all {MaxSequences} sequence slots are in use");
        _inUse[slot] = true;
        return new KvHandle(slot);
    }

    public void Release(KvHandle handle)
    {
        if (!_inUse[handle.Slot])
            throw new InvalidOperationException($"KV slot {handle.Slot} is not allocated");
        _inUse[handle.Slot] = false;
        _free.Push(handle.Slot);
    }

    internal void CheckAllocated(KvHandle handle)
    {
        if ((uint)handle.Slot >= (uint)MaxSequences || !_inUse[handle.Slot])
            throw new ArgumentException($"KV slot {handle.Slot} is not allocated");
    }

    internal Tensor Keys(int layer) => _keys[layer];
    internal Tensor Values(int layer) => _values[layer];

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values))
            t.Dispose();
    }
}
