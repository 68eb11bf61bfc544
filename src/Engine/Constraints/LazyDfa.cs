namespace Serving.Engine.Constraints;

/// <summary>
/// The deterministic form of a <see cref="ByteNfa"/>, built lazily as RE2's DFA is: a state is the set of NFA
/// configurations reachable after some input, created the first time a transition reaches it, and each transition is
/// computed once. A configuration is an NFA state with a call stack (an interned list of return states, 0 the empty
/// one): calls push, a machine's end pops, so a constraint with recursion (<see cref="ByteNfa.Call"/>) has infinitely
/// many states of which only those a text reaches are made; without calls every stack is empty and this is the subset
/// construction. Bytes that no NFA edge tells apart share a class, so a state's table is <c>[classes]</c> wide, not 256.
/// Not thread-safe: <see cref="TokenConstraint"/> serialises access.
/// </summary>
/// <remarks>Invariants: state 0 is dead (no configuration; every transition back to 0); a state's set keeps only
/// configurations whose NFA state has byte edges, and the accept state with the empty stack, sorted, so equal sets are one
/// state. A closure makes at most <see cref="MaxLeftRecursion"/> calls from one call site without reading a byte (left
/// recursion: each repetition would push again forever), so a left-recursive rule nests that deep and no deeper. A state
/// keeps at most <see cref="MaxConfigurations"/> configurations, those with the shallowest stacks: an ambiguous grammar
/// (<c>a ::= a a | "x"</c>) has a stack for each way to parse the text so far, exponentially many, and dropping the
/// deepest keeps every output in the language (each configuration kept can still complete) while some parses go
/// unexplored.</remarks>
internal sealed class LazyDfa
{
    public const int Dead = 0;

    /// <summary>Calls one call site may make in one closure, without a byte read between them: left recursion's depth.</summary>
    public const int MaxLeftRecursion = 5;

    /// <summary>Configurations one state keeps (the shallowest stacks): what bounds an ambiguous grammar's parses.</summary>
    public const int MaxConfigurations = 128;

    /// <summary>
    /// Configurations one closure may visit. Why: recursion through rules that may be empty, or through many call sites at
    /// a rule's start, explores every order of calls made without reading a byte — exponentially many — and the fuzzer
    /// found grammars whose one transition took tens of seconds. Past it, a <see cref="ConstraintException"/>.
    /// </summary>
    public const int MaxClosureVisits = 20_000;

    private const int Unknown = -1;

    private readonly ByteNfa _nfa;
    private readonly byte[] _classOf = new byte[256];
    private readonly int _classes;
    private readonly List<long[]> _sets = [];
    private readonly List<bool> _accepting = [];
    private readonly Dictionary<SetKey, int> _ids = [];
    private int[] _next = [];
    private readonly int[] _mark;
    private int _generation;
    private readonly HashSet<long> _visited = [];
    private readonly Stack<(int State, int Stack, int Pushed)> _work = new();
    private readonly List<long> _found = [];
    private readonly List<int> _frameReturn = [-1], _frameParent = [-1], _frameDepth = [0];
    private readonly Dictionary<long, int> _frameIds = [];
    private readonly int _maxStates;
    private int _closureVisits;

    /// <param name="nfa">A frozen automaton.</param>
    /// <param name="maxStates">Beyond this many states (or call-stack frames) a transition throws
    /// <see cref="ConstraintException"/> (a memory bound).</param>
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
        Start = Intern(Closure([Configuration(nfa.StartState, 0)]));
    }

    public int Start { get; }
    public int StateCount => _sets.Count;
    public int ClassCount => _classes;

    /// <summary>Configurations visited by every closure so far: the work this automaton has done, which callers bound.</summary>
    public long Visits { get; private set; }

    /// <summary>Call-stack frames made so far (0 for a constraint without calls).</summary>
    public int FrameCount => _frameReturn.Count - 1;

    /// <summary>Bytes held by the transition tables, state sets and stacks: what this automaton costs in memory.</summary>
    public long Bytes => (long)_next.Length * sizeof(int) + _sets.Sum(s => 16L + 8L * s.Length) + FrameCount * 44L;

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

    private static long Configuration(int state, int stack) => (long)state << 32 | (uint)stack;

    private int Compute(int state, byte b)
    {
        var set = _sets[state];
        var targets = new List<long>();
        foreach (long configuration in set)
        {
            int s = (int)(configuration >> 32), stack = (int)configuration;
            for (int e = _nfa.EdgeStart[s]; e < _nfa.EdgeStart[s + 1]; e++)
                if (_nfa.EdgeLo[e] <= b && b <= _nfa.EdgeHi[e])
                    targets.Add(Configuration(_nfa.EdgeTo[e], stack));
        }

        return targets.Count == 0 ? Dead : Intern(Closure(targets));
    }

    /// <summary>
    /// The closure of <paramref name="seeds"/> under epsilon moves, calls (push the return state, enter the machine) and
    /// machine ends (pop, continue at the return state), kept to the configurations that matter, sorted.
    /// </summary>
    private long[] Closure(List<long> seeds)
    {
        if (++_generation == int.MaxValue)
        {
            Array.Clear(_mark);
            _generation = 1;
        }

        _visited.Clear();
        _found.Clear();
        _closureVisits = 0;
        foreach (long seed in seeds)
            Visit((int)(seed >> 32), (int)seed, 0);
        while (_work.Count > 0)
        {
            var (s, stack, pushed) = _work.Pop();
            if (_nfa.EdgeStart[s] < _nfa.EdgeStart[s + 1] || (s == _nfa.AcceptState && stack == 0))
                _found.Add(Configuration(s, stack));
            for (int e = _nfa.EpsilonStart[s]; e < _nfa.EpsilonStart[s + 1]; e++)
                Visit(_nfa.EpsilonTargets[e], stack, pushed);
            if (!_nfa.HasCalls)
                continue;
            for (int c = _nfa.CallStart[s]; c < _nfa.CallStart[s + 1]; c++)
            {
                int back = _nfa.CallReturn[c];
                if (Repeats(stack, pushed, back) < MaxLeftRecursion)
                    Visit(_nfa.MachineStart[_nfa.CallMachine[c]], Push(stack, back), pushed + 1);
            }

            if (stack != 0 && _nfa.IsMachineEnd[s])
                Visit(_frameReturn[stack], _frameParent[stack], Math.Max(pushed - 1, 0));
        }

        if (_found.Count > MaxConfigurations)
        {
            _found.Sort((a, b) => _frameDepth[(int)a].CompareTo(_frameDepth[(int)b]) is int c && c != 0 ? c : a.CompareTo(b));
            _found.RemoveRange(MaxConfigurations, _found.Count - MaxConfigurations);
        }

        _found.Sort();
        return [.. _found];
    }

    private void Visit(int state, int stack, int pushed)
    {
        // The empty stack, every configuration of a constraint without calls, is marked in an array; the rest hashed.
        if (stack == 0)
        {
            if (_mark[state] == _generation)
                return;
            _mark[state] = _generation;
        }
        else if (!_visited.Add(Configuration(state, stack)))
            return;

        Visits++;
        if (++_closureVisits > MaxClosureVisits)
        {
            _work.Clear();
            throw new ConstraintException("$", $"the constraint reaches more than {MaxClosureVisits:N0} parser configurations without reading a byte "
                + "(recursion through rules that may match nothing, or one rule called at the start of many others); simplify its recursion");
        }

        _work.Push((state, stack, pushed));
    }

    /// <summary>How many of the top <paramref name="pushed"/> frames of <paramref name="stack"/> return to <paramref name="back"/>.</summary>
    private int Repeats(int stack, int pushed, int back)
    {
        int repeats = 0;
        for (int i = 0; i < pushed && stack != 0; i++, stack = _frameParent[stack])
            if (_frameReturn[stack] == back)
                repeats++;
        return repeats;
    }

    private int Push(int stack, int back)
    {
        long key = Configuration(back, stack);
        if (_frameIds.TryGetValue(key, out int frame))
            return frame;
        if (_frameReturn.Count > _maxStates)
            throw new ConstraintException("$", $"the constraint's automaton nested past {_maxStates:N0} call frames while generating");
        frame = _frameReturn.Count;
        _frameReturn.Add(back);
        _frameParent.Add(stack);
        _frameDepth.Add(_frameDepth[stack] + 1);
        _frameIds[key] = frame;
        return frame;
    }

    private int Intern(long[] set)
    {
        var key = new SetKey(set);
        if (_ids.TryGetValue(key, out int id))
            return id;
        if (_sets.Count >= _maxStates)
            throw new ConstraintException("$", $"the constraint's automaton grew past {_maxStates:N0} states while generating");
        id = _sets.Count;
        _sets.Add(set);
        _accepting.Add(Array.BinarySearch(set, Configuration(_nfa.AcceptState, 0)) >= 0);
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

    private readonly struct SetKey(long[] configurations) : IEquatable<SetKey>
    {
        private readonly long[] _configurations = configurations;
        private readonly int _hash = Hash(configurations);

        public bool Equals(SetKey other) => _configurations.AsSpan().SequenceEqual(other._configurations);
        public override bool Equals(object? obj) => obj is SetKey k && Equals(k);
        public override int GetHashCode() => _hash;

        private static int Hash(long[] configurations)
        {
            var h = new HashCode();
            foreach (long c in configurations)
                h.Add(c);
            return h.ToHashCode();
        }
    }
}
