namespace Serving.Engine.Constraints;

/// <summary>
/// A nondeterministic automaton over bytes, built Thompson-style from fragments: states joined by epsilon moves and by
/// byte-range edges. Text constraints compile to it through their UTF-8 encodings (<see cref="Utf8Sequences"/>), so a
/// token's bytes are matched exactly, even when the token ends inside a character. <see cref="Freeze"/> turns it into the
/// flat arrays <see cref="LazyDfa"/> walks.
/// </summary>
internal sealed class ByteNfa
{
    private readonly List<List<int>> _epsilon = [];
    private readonly List<List<(byte Lo, byte Hi, int To)>> _edges = [];
    private readonly int _maxStates;

    /// <param name="maxStates">The size above which building stops with a <see cref="ConstraintException"/>: a bound on
    /// the memory one constraint may take (a schema's repetitions multiply its size).</param>
    public ByteNfa(int maxStates = 500_000) => _maxStates = maxStates;

    public int StateCount => EpsilonStart.Length > 0 ? EpsilonStart.Length - 1 : _epsilon.Count;

    /// <summary>Frozen form: epsilon targets and byte edges per state, compressed-row.</summary>
    public int[] EpsilonStart { get; private set; } = [];
    public int[] EpsilonTargets { get; private set; } = [];
    public int[] EdgeStart { get; private set; } = [];
    public byte[] EdgeLo { get; private set; } = [];
    public byte[] EdgeHi { get; private set; } = [];
    public int[] EdgeTo { get; private set; } = [];
    public int StartState { get; private set; }
    public int AcceptState { get; private set; }

    public int NewState()
    {
        if (_epsilon.Count >= _maxStates)
            throw new ConstraintException("$", $"the constraint expands to more than {_maxStates:N0} automaton states; lower its maxLength, maxItems or repetition counts");
        _epsilon.Add([]);
        _edges.Add([]);
        return _epsilon.Count - 1;
    }

    public void Epsilon(int from, int to) => _epsilon[from].Add(to);

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
            _edges[at].Add((b, b, next));
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
            foreach (var sequence in Utf8Sequences.Of(lo, hi))
            {
                int at = start;
                for (int i = 0; i < sequence.Length; i++)
                {
                    int next = i == sequence.Length - 1 ? end : NewState();
                    _edges[at].Add((sequence[i].Lo, sequence[i].Hi, next));
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
        _edges[start].Add((lo, hi, end));
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
            required.Add(make());
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
        int n = StateCount;
        EpsilonStart = new int[n + 1];
        EdgeStart = new int[n + 1];
        for (int s = 0; s < n; s++)
        {
            EpsilonStart[s + 1] = EpsilonStart[s] + _epsilon[s].Count;
            EdgeStart[s + 1] = EdgeStart[s] + _edges[s].Count;
        }

        EpsilonTargets = [.. _epsilon.SelectMany(e => e)];
        var edges = _edges.SelectMany(e => e).ToArray();
        EdgeLo = [.. edges.Select(e => e.Lo)];
        EdgeHi = [.. edges.Select(e => e.Hi)];
        EdgeTo = [.. edges.Select(e => e.To)];
        StartState = whole.Start;
        AcceptState = whole.End;
        _epsilon.Clear();
        _edges.Clear();
    }
}
