using System.Runtime.InteropServices;

namespace Serving.Engine.Constraints;

/// <summary>
/// A nondeterministic automaton over bytes, built Thompson-style from fragments: states joined by epsilon moves and by
/// byte-range edges. Text constraints compile to it through their UTF-8 encodings (<see cref="Utf8Sequences"/>), so a
/// token's bytes are matched exactly, even when the token ends inside a character. <see cref="Freeze"/> turns it into the
/// flat arrays <see cref="LazyDfa"/> walks.
/// </summary>
/// <remarks>
/// Recursion (a grammar rule or a JSON Schema <c>$ref</c> inside its own expansion, JSON values inside JSON values) is
/// not unrolled: the recursive part is a <em>machine</em> (<see cref="NewMachine"/>, <see cref="DefineMachine"/>), built
/// once, and each use of it a <em>call</em> (<see cref="Call"/>): a move into the machine's start that pushes its return
/// state, popped when the machine's end is reached. The automaton is then a pushdown one and its language context-free:
/// nesting is unbounded. <see cref="Freeze"/> drops what can never complete (calls into machines that derive no finite
/// text, and the states that only lead there), so every state a walk reaches can still end its text.
/// </remarks>
internal sealed class ByteNfa
{
    // While building, moves are appended in creation order as flat (from, to) lists rather than a list per state:
    // a state costs no allocation, so a hostile constraint reaches the state bound in milliseconds, not a second of
    // garbage collection. Freeze sorts them by source state, stably, so each state keeps its moves' order.
    private readonly List<int> _epsilonFrom = [], _epsilonTo = [], _edgeFrom = [], _edgeTo = [];
    private readonly List<byte> _edgeLo = [], _edgeHi = [];
    private readonly List<int> _callFrom = [], _callMachine = [], _callReturn = [], _machineStart = [], _machineEnd = [];
    private readonly int _maxStates;
    private int _states;
    private bool _mayDeadEnd;

    /// <param name="maxStates">The size above which building stops with a <see cref="ConstraintException"/>: a bound on
    /// the memory one constraint may take (a schema's repetitions multiply its size).</param>
    public ByteNfa(int maxStates = 500_000) => _maxStates = maxStates;

    public int StateCount => _states;

    /// <summary>Frozen form: epsilon targets and byte edges per state, compressed-row.</summary>
    public int[] EpsilonStart { get; private set; } = [];
    public int[] EpsilonTargets { get; private set; } = [];
    public int[] EdgeStart { get; private set; } = [];
    public byte[] EdgeLo { get; private set; } = [];
    public byte[] EdgeHi { get; private set; } = [];
    public int[] EdgeTo { get; private set; } = [];
    public int StartState { get; private set; }
    public int AcceptState { get; private set; }

    /// <summary>Frozen calls, compressed-row by calling state: the machine entered and the state its end returns to.</summary>
    public int[] CallStart { get; private set; } = [];
    public int[] CallMachine { get; private set; } = [];
    public int[] CallReturn { get; private set; } = [];
    public int[] MachineStart { get; private set; } = [];

    /// <summary>Per state: true where a machine ends (reaching it pops the stack's top return state).</summary>
    public bool[] IsMachineEnd { get; private set; } = [];

    /// <summary>Whether any call exists: false for every regular constraint (the stack then stays empty).</summary>
    public bool HasCalls => CallMachine.Length > 0;

    public int NewState()
    {
        if (_states >= _maxStates)
            throw new ConstraintException("$", $"the constraint expands to more than {_maxStates:N0} automaton states; lower its maxLength, maxItems or repetition counts");
        return _states++;
    }

    public void Epsilon(int from, int to)
    {
        _epsilonFrom.Add(from);
        _epsilonTo.Add(to);
    }

    /// <summary>A move from <paramref name="from"/> to <paramref name="to"/> on any byte in [lo, hi].</summary>
    public void Edge(int from, byte lo, byte hi, int to)
    {
        _edgeFrom.Add(from);
        _edgeLo.Add(lo);
        _edgeHi.Add(hi);
        _edgeTo.Add(to);
    }

    /// <summary>A machine to be defined by <see cref="DefineMachine"/> and entered by <see cref="Call"/>: its number.</summary>
    public int NewMachine()
    {
        int start = NewState(), end = NewState();
        _machineStart.Add(start);
        _machineEnd.Add(end);
        return _machineStart.Count - 1;
    }

    /// <summary>
    /// The language of <paramref name="machine"/>: <paramref name="body"/> (which may call the machine itself). A machine
    /// left undefined, or defined as <see cref="NfaFragment.Never"/>, derives nothing, and calls into it are dropped.
    /// </summary>
    public void DefineMachine(int machine, NfaFragment body)
    {
        if (body.IsNever)
            return;
        Epsilon(_machineStart[machine], body.Start);
        Epsilon(body.End, _machineEnd[machine]);
    }

    /// <summary>
    /// Says that a fragment was built with states that may lead nowhere (a digit automaton whose remainders cannot all
    /// reach zero), so <see cref="Freeze"/> prunes them as it does for calls.
    /// </summary>
    public void MayHaveDeadEnds() => _mayDeadEnd = true;

    /// <summary>The language of <paramref name="machine"/> here, through the stack.</summary>
    public NfaFragment Call(int machine)
    {
        _mayDeadEnd = true;
        int from = NewState(), back = NewState();
        _callFrom.Add(from);
        _callMachine.Add(machine);
        _callReturn.Add(back);
        return new NfaFragment(from, back);
    }

    /// <summary>The empty string.</summary>
    public NfaFragment Empty()
    {
        int s = NewState();
        return new NfaFragment(s, s);
    }

    /// <summary>Exactly the UTF-8 bytes of <paramref name="text"/>.</summary>
    public NfaFragment Literal(string text) => Bytes(System.Text.Encoding.UTF8.GetBytes(text));

    public NfaFragment Bytes(ReadOnlySpan<byte> bytes)
    {
        int start = NewState(), at = start;
        foreach (byte b in bytes)
        {
            int next = NewState();
            Edge(at, b, b, next);
            at = next;
        }

        return new NfaFragment(start, at);
    }

    /// <summary>One character of <paramref name="set"/> (its UTF-8 encoding); <see cref="NfaFragment.Never"/> when empty.</summary>
    public NfaFragment Chars(CodePointSet set)
    {
        if (set.IsEmpty)
            return NfaFragment.Never;
        int start = NewState(), end = NewState();
        foreach (var (lo, hi) in set.Ranges)
        {
            if (hi <= 0x7F)
            {
                Edge(start, (byte)lo, (byte)hi, end);        // one byte each: what Utf8Sequences would give, without its lists
                continue;
            }

            foreach (var sequence in Utf8Sequences.Of(lo, hi))
            {
                int at = start;
                for (int i = 0; i < sequence.Length; i++)
                {
                    int next = i == sequence.Length - 1 ? end : NewState();
                    Edge(at, sequence[i].Lo, sequence[i].Hi, next);
                    at = next;
                }
            }
        }

        return new NfaFragment(start, end);
    }

    /// <summary>One byte in [lo, hi] (for ASCII classes such as digits).</summary>
    public NfaFragment ByteRange(byte lo, byte hi)
    {
        int start = NewState(), end = NewState();
        Edge(start, lo, hi, end);
        return new NfaFragment(start, end);
    }

    public NfaFragment Sequence(params IEnumerable<NfaFragment> parts)
    {
        NfaFragment? result = null;
        foreach (var part in parts)
        {
            if (part.IsNever)
                return NfaFragment.Never;
            if (result is { } r)
            {
                Epsilon(r.End, part.Start);
                result = new NfaFragment(r.Start, part.End);
            }
            else
                result = part;
        }

        return result ?? Empty();
    }

    public NfaFragment Alternation(params IEnumerable<NfaFragment> options)
    {
        var live = options.Where(o => !o.IsNever).ToList();
        if (live.Count <= 1)
            return live.Count == 1 ? live[0] : NfaFragment.Never;
        int start = NewState(), end = NewState();
        foreach (var option in live)
        {
            Epsilon(start, option.Start);
            Epsilon(option.End, end);
        }

        return new NfaFragment(start, end);
    }

    public NfaFragment Optional(NfaFragment part) => Alternation(part, Empty());

    /// <summary>
    /// <paramref name="make"/>'s language repeated min to max times (max null: unbounded). Each bounded repetition is a
    /// fresh copy from <paramref name="make"/>, since a Thompson fragment has one continuation.
    /// </summary>
    public NfaFragment Repeat(Func<NfaFragment> make, int min, int? max)
    {
        if (max < min)
            return NfaFragment.Never;
        var required = new List<NfaFragment>();
        for (int i = 0; i < min; i++)
        {
            var copy = make();
            if (copy.IsNever)
                return NfaFragment.Never;                   // no copy can be made: the rest would be built for nothing
            required.Add(copy);
        }
        if (max is null)
        {
            var body = make();
            if (body.IsNever)
                return Sequence(required);
            int hub = NewState();
            Epsilon(hub, body.Start);
            Epsilon(body.End, hub);
            required.Add(new NfaFragment(hub, hub));
            return Sequence(required);
        }

        int optional = max.Value - min;
        if (optional == 0)
            return Sequence(required);
        // x{0,k}: a chain of k copies where every copy's entry may also jump to the end.
        int end = NewState();
        int first = -1, previousEnd = -1;
        for (int i = 0; i < optional; i++)
        {
            var copy = make();
            if (copy.IsNever)
                break;
            Epsilon(copy.Start, end);
            if (previousEnd >= 0)
                Epsilon(previousEnd, copy.Start);
            else
                first = copy.Start;
            previousEnd = copy.End;
        }

        if (previousEnd >= 0)
            Epsilon(previousEnd, end);
        else
            first = end;
        required.Add(new NfaFragment(first, end));
        return Sequence(required);
    }

    /// <summary>Ends building: <paramref name="whole"/> is the language, from <see cref="StartState"/> to <see cref="AcceptState"/>.</summary>
    public void Freeze(NfaFragment whole)
    {
        if (whole.IsNever)
            throw new ConstraintException("$", "the constraint admits no output at all");
        if (_mayDeadEnd)
        {
            var live = NfaPruning.Prune(_states, whole.End, _epsilonFrom, _epsilonTo, _edgeFrom, _edgeTo, [_edgeLo, _edgeHi],
                _callFrom, _callMachine, _callReturn, _machineStart, _machineEnd);
            if (!live[whole.Start])
                throw new ConstraintException("$", "the constraint admits no finite output (every way through it recurses forever)");
        }

        CallStart = CountingSort(_callFrom, _states, out var callOrder);
        CallMachine = Gather(CollectionsMarshal.AsSpan(_callMachine), callOrder);
        CallReturn = Gather(CollectionsMarshal.AsSpan(_callReturn), callOrder);
        MachineStart = [.. _machineStart];
        IsMachineEnd = new bool[_states];
        foreach (int end in _machineEnd)
            IsMachineEnd[end] = true;
        EpsilonStart = CountingSort(_epsilonFrom, _states, out var epsilonOrder);
        EpsilonTargets = Gather(CollectionsMarshal.AsSpan(_epsilonTo), epsilonOrder);
        EdgeStart = CountingSort(_edgeFrom, _states, out var edgeOrder);
        EdgeLo = Gather(CollectionsMarshal.AsSpan(_edgeLo), edgeOrder);
        EdgeHi = Gather(CollectionsMarshal.AsSpan(_edgeHi), edgeOrder);
        EdgeTo = Gather(CollectionsMarshal.AsSpan(_edgeTo), edgeOrder);
        StartState = whole.Start;
        AcceptState = whole.End;
        Release(_epsilonFrom, _epsilonTo, _edgeFrom, _edgeTo, _callFrom, _callMachine, _callReturn, _machineStart, _machineEnd);
        Release(_edgeLo, _edgeHi);
    }

    /// <summary>
    /// Compressed-row starts of moves grouped by source state ([states + 1]), and in <paramref name="order"/> the moves'
    /// indices in that grouping, each state's in the order they were added.
    /// </summary>
    private static int[] CountingSort(List<int> from, int states, out int[] order)
    {
        var sources = CollectionsMarshal.AsSpan(from);
        var start = new int[states + 1];
        foreach (int s in sources)
            start[s + 1]++;
        for (int s = 0; s < states; s++)
            start[s + 1] += start[s];
        var next = start[..states];
        order = new int[sources.Length];
        for (int m = 0; m < sources.Length; m++)
            order[next[sources[m]]++] = m;
        return start;
    }

    /// <summary>The building lists' memory back: the frozen arrays hold everything from here on.</summary>
    private static void Release<T>(params ReadOnlySpan<List<T>> lists)
    {
        foreach (var list in lists)
        {
            list.Clear();
            list.TrimExcess();
        }
    }

    private static T[] Gather<T>(ReadOnlySpan<T> values, int[] order)
    {
        var gathered = new T[order.Length];
        for (int i = 0; i < order.Length; i++)
            gathered[i] = values[order[i]];
        return gathered;
    }
}
