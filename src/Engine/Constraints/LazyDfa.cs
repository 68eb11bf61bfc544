namespace Serving.Engine.Constraints;

/// <summary>
/// The deterministic form of a <see cref="ByteNfa"/>, built lazily as RE2's DFA is: a state is the set of NFA states
/// reachable after some input, created the first time a transition reaches it, and each transition is computed once.
/// Bytes that no NFA edge tells apart share a class, so a state's table is <c>[classes]</c> wide, not 256. Not thread-safe:
/// <see cref="TokenConstraint"/> serialises access.
/// </summary>
/// <remarks>Invariants: state 0 is dead (no NFA state; every transition back to 0); a state's NFA set keeps only states
/// with byte edges and the accept state, sorted, so equal sets are one state.</remarks>
internal sealed class LazyDfa
{
    public const int Dead = 0;
    private const int Unknown = -1;

    private readonly ByteNfa _nfa;
    private readonly byte[] _classOf = new byte[256];
    private readonly int _classes;
    private readonly List<int[]> _sets = [];
    private readonly List<bool> _accepting = [];
    private readonly Dictionary<SetKey, int> _ids = [];
    private int[] _next = [];
    private readonly int[] _mark;
    private int _generation;
    private readonly Stack<int> _stack = new();
    private readonly List<int> _found = [];
    private readonly int _maxStates;

    /// <param name="nfa">A frozen automaton.</param>
    /// <param name="maxStates">Beyond this many states a transition throws <see cref="ConstraintException"/> (a memory bound).</param>
    public LazyDfa(ByteNfa nfa, int maxStates = 500_000)
    {
        _nfa = nfa;
        _maxStates = maxStates;
        _mark = new int[nfa.StateCount];
        var cuts = new bool[257];
        cuts[0] = true;
        for (int e = 0; e < nfa.EdgeLo.Length; e++)
        {
            cuts[nfa.EdgeLo[e]] = true;
            cuts[nfa.EdgeHi[e] + 1] = true;
        }

        int c = -1;
        for (int b = 0; b < 256; b++)
        {
            if (cuts[b])
                c++;
            _classOf[b] = (byte)c;
        }

        _classes = c + 1;
        Intern([]);                                           // dead
        Start = Intern(Closure([nfa.StartState]));
    }

    public int Start { get; }
    public int StateCount => _sets.Count;
    public int ClassCount => _classes;

    /// <summary>Bytes held by the transition tables and state sets: what this automaton costs in memory.</summary>
    public long Bytes => (long)_next.Length * sizeof(int) + _sets.Sum(s => 16L + 4L * s.Length);

    public bool IsAccepting(int state) => _accepting[state];

    /// <summary>The state after <paramref name="b"/> from <paramref name="state"/> (<see cref="Dead"/> when nothing matches).</summary>
    public int Next(int state, byte b)
    {
        int cls = _classOf[b];
        int at = state * _classes + cls;
        int next = _next[at];
        if (next != Unknown)
            return next;
        next = Compute(state, b);
        _next[state * _classes + cls] = next;          // Compute may have grown the table
        return next;
    }

    private int Compute(int state, byte b)
    {
        var set = _sets[state];
        var targets = new List<int>();
        foreach (int s in set)
            for (int e = _nfa.EdgeStart[s]; e < _nfa.EdgeStart[s + 1]; e++)
                if (_nfa.EdgeLo[e] <= b && b <= _nfa.EdgeHi[e])
                    targets.Add(_nfa.EdgeTo[e]);
        return targets.Count == 0 ? Dead : Intern(Closure(targets));
    }

    /// <summary>The epsilon closure of <paramref name="seeds"/>, kept to the states that matter (byte edges or accept), sorted.</summary>
    private int[] Closure(IEnumerable<int> seeds)
    {
        if (++_generation == int.MaxValue)
        {
            Array.Clear(_mark);
            _generation = 1;
        }

        _found.Clear();
        foreach (int s in seeds)
        {
            if (_mark[s] == _generation)
                continue;
            _mark[s] = _generation;
            _stack.Push(s);
        }

        while (_stack.Count > 0)
        {
            int s = _stack.Pop();
            if (_nfa.EdgeStart[s] < _nfa.EdgeStart[s + 1] || s == _nfa.AcceptState)
                _found.Add(s);
            for (int e = _nfa.EpsilonStart[s]; e < _nfa.EpsilonStart[s + 1]; e++)
            {
                int t = _nfa.EpsilonTargets[e];
                if (_mark[t] == _generation)
                    continue;
                _mark[t] = _generation;
                _stack.Push(t);
            }
        }

        _found.Sort();
        return [.. _found];
    }

    private int Intern(int[] set)
    {
        var key = new SetKey(set);
        if (_ids.TryGetValue(key, out int id))
            return id;
        if (_sets.Count >= _maxStates)
            throw new ConstraintException("$", $"the constraint's automaton grew past {_maxStates:N0} states while generating");
        id = _sets.Count;
        _sets.Add(set);
        _accepting.Add(Array.BinarySearch(set, _nfa.AcceptState) >= 0);
        _ids[key] = id;
        int needed = _sets.Count * _classes;
        if (_next.Length < needed)
        {
            int old = _next.Length;
            Array.Resize(ref _next, Math.Max(needed, old * 2));
            _next.AsSpan(old).Fill(Unknown);
        }

        if (id == Dead)
            _next.AsSpan(0, _classes).Clear();                // dead stays dead
        return id;
    }

    private readonly struct SetKey(int[] states) : IEquatable<SetKey>
    {
        private readonly int[] _states = states;
        private readonly int _hash = Hash(states);

        public bool Equals(SetKey other) => _states.AsSpan().SequenceEqual(other._states);
        public override bool Equals(object? obj) => obj is SetKey k && Equals(k);
        public override int GetHashCode() => _hash;

        private static int Hash(int[] states)
        {
            var h = new HashCode();
            foreach (int s in states)
                h.Add(s);
            return h.ToHashCode();
        }
    }
}
