namespace Serving.Engine.Constraints;

/// <summary>
/// A compiled output constraint over a model's tokens: the lazy DFA of the allowed output bytes, walked against the
/// vocabulary trie. A sequence keeps a state (an int, <see cref="Start"/> at first); each step its allowed tokens are
/// <see cref="AllowedTokens"/>, and the chosen token moves it with <see cref="Advance"/>. Because the automaton reads
/// bytes, a token spanning several grammar symbols, a leading space or a token ending inside a UTF-8 character is
/// handled exactly. Shared by every sequence with the same constraint; thread-safe (one lock; masks are cached per state).
/// </summary>
public sealed class TokenConstraint
{
    /// <summary>Masks kept per constraint; past it the cache is cleared and masks are recomputed as states recur.</summary>
    public const int MaxCachedMasks = 2048;

    /// <summary>
    /// Automaton work (configurations visited, <see cref="LazyDfa.Visits"/>) one mask may take. Why: the engine's step waits
    /// for its rows' masks, so a constraint whose vocabulary walk creates state after state (an ambiguous grammar, a lazily
    /// exploding pattern) would stall every row of the batch; past it, a <see cref="ConstraintException"/> ends the row.
    /// </summary>
    public const long MaxVisitsPerMask = 250_000;

    private readonly LazyDfa _dfa;
    private readonly TokenTrie _trie;
    private readonly object _gate = new();
    private readonly Dictionary<int, ulong[]> _masks = [];
    private readonly Dictionary<int, bool> _continues = [];
    private int[] _stack = new int[256];

    internal TokenConstraint(LazyDfa dfa, TokenTrie trie, string description)
    {
        _dfa = dfa;
        _trie = trie;
        Description = description;
    }

    /// <summary>What the constraint is (<c>json_schema</c>, <c>regex</c>...), for logs and metrics.</summary>
    public string Description { get; }

    /// <summary>The state before any output.</summary>
    public int Start => _dfa.Start;

    /// <summary>The state no output can recover from.</summary>
    public static int Dead => LazyDfa.Dead;

    /// <summary>Mask width in 64-bit words (the model's vocabulary, rounded up).</summary>
    public int MaskWords => _trie.MaskWords;

    /// <summary>The bound a mask's work is held to: <see cref="MaxVisitsPerMask"/> (tests lower it).</summary>
    internal long VisitsPerMask { get; set; } = MaxVisitsPerMask;

    /// <summary>Automaton work done so far (<see cref="LazyDfa.Visits"/>), for tests and benchmarks.</summary>
    internal long Work
    {
        get
        {
            lock (_gate)
                return _dfa.Visits;
        }
    }

    /// <summary>Memory held: automaton tables, state sets and cached masks.</summary>
    public long Bytes
    {
        get
        {
            lock (_gate)
                return _dfa.Bytes + (long)_masks.Count * (_trie.MaskWords * sizeof(ulong) + 32);
        }
    }

    /// <summary>Whether the output so far is complete (the end of the text may come here).</summary>
    public bool IsAccepting(int state)
    {
        lock (_gate)
            return _dfa.IsAccepting(state);
    }

    /// <summary>Whether any further byte is allowed: false for a complete output that admits no continuation.</summary>
    public bool CanContinue(int state)
    {
        lock (_gate)
        {
            if (_continues.TryGetValue(state, out bool known))
                return known;
            bool any = false;
            for (int b = 0; b < 256 && !any; b++)
                any = _dfa.Next(state, (byte)b) != LazyDfa.Dead;
            _continues[state] = any;
            return any;
        }
    }

    /// <summary>
    /// Bit i set iff token i's bytes keep the output within the constraint from <paramref name="state"/> (special tokens
    /// never; the caller adds end-of-sequence when <see cref="IsAccepting"/>). Cached: the returned array is shared and
    /// must not be written.
    /// </summary>
    public ulong[] AllowedTokens(int state)
    {
        lock (_gate)
        {
            if (_masks.TryGetValue(state, out var cached))
                return cached;
            if (_masks.Count >= MaxCachedMasks)
                _masks.Clear();
            var mask = Walk(state);
            _masks[state] = mask;
            return mask;
        }
    }

    /// <summary>Whether <see cref="AllowedTokens"/> for <paramref name="state"/> is ready without a walk.</summary>
    public bool HasMask(int state)
    {
        lock (_gate)
            return _masks.ContainsKey(state);
    }

    /// <summary>The state after <paramref name="tokenId"/>'s bytes; <see cref="Dead"/> when they leave the constraint.</summary>
    public int Advance(int state, int tokenId)
    {
        var bytes = (uint)tokenId < (uint)_trie.TokenBytes.Length ? _trie.TokenBytes[tokenId] : [];
        lock (_gate)
        {
            foreach (byte b in bytes)
            {
                state = _dfa.Next(state, b);
                if (state == LazyDfa.Dead)
                    break;
            }

            return bytes.Length == 0 ? LazyDfa.Dead : state;
        }
    }

    /// <summary>Whether <paramref name="text"/> (its UTF-8 bytes) is a complete output of this constraint.</summary>
    public bool Matches(string text)
    {
        lock (_gate)
        {
            int state = _dfa.Start;
            foreach (byte b in System.Text.Encoding.UTF8.GetBytes(text))
                state = _dfa.Next(state, b);
            return _dfa.IsAccepting(state);
        }
    }

    /// <summary>Depth-first over the trie from the root, pruning a subtree as soon as its prefix reaches the dead state.</summary>
    private ulong[] Walk(int state)
    {
        long budget = _dfa.Visits + VisitsPerMask;
        var mask = new ulong[_trie.MaskWords];
        var nodeByte = _trie.NodeByte;
        var childStart = _trie.ChildStart;
        var childCount = _trie.ChildCount;
        var tokenStart = _trie.TokenStart;
        var tokens = _trie.Tokens;
        int top = 0;
        Push(0, state, ref top);
        while (top > 0)
        {
            top -= 2;
            int node = _stack[top], at = _stack[top + 1];
            int first = childStart[node], end = first + childCount[node];
            if (_dfa.Visits > budget)
                throw new ConstraintException("$", $"one step's token mask needs more than {VisitsPerMask:N0} parser configurations; simplify the constraint");
            for (int c = first; c < end; c++)
            {
                int next = _dfa.Next(at, nodeByte[c]);
                if (next == LazyDfa.Dead)
                    continue;
                for (int t = tokenStart[c]; t < tokenStart[c + 1]; t++)
                    mask[tokens[t] >> 6] |= 1UL << (tokens[t] & 63);
                if (childCount[c] > 0)
                    Push(c, next, ref top);
            }
        }

        return mask;
    }

    private void Push(int node, int state, ref int top)
    {
        if (top + 2 > _stack.Length)
            Array.Resize(ref _stack, _stack.Length * 2);
        _stack[top++] = node;
        _stack[top++] = state;
    }
}
