using System.Text.Json;
using Serving.Contracts.Generation;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Constraints;

/// <summary>
/// Compiles <see cref="OutputConstraint"/>s against one model's vocabulary and keeps the results: a constraint is compiled
/// once per distinct content (<see cref="OutputConstraint.CacheKey"/>) within a <em>scope</em> and shared by every request
/// of that scope that sends it. The server's scope is the tenant and the request's <c>cache_salt</c>: a constraint's
/// automaton grows with the outputs generated under it (with recursion, without a bound but its memory bound), and its
/// cache answers faster once warm, so sharing one across tenants would let a tenant exhaust another's automaton or learn
/// by timing what another tenant sent. The
/// cache holds at most <see cref="MaxEntries"/> constraints and evicts the least recently used while their memory (which
/// grows as requests explore them) exceeds its budget. Refusals are kept too (the last <see cref="MaxRefusals"/>), so a
/// constraint sent again after its refusal is refused without being built again. Thread-safe.
/// </summary>
/// <remarks>
/// Building is the one part of a request a client can make arbitrarily expensive up to the automaton's state bound, so
/// at most <c>maxConcurrentBuilds</c> run at once, and the rest wait their turn without holding a thread: a flood of
/// large or hostile constraints takes that many cores, never the engine loop's or the plain requests' (vLLM's structured
/// output manager compiles grammars on a pool of half the CPUs for the same reason).
/// </remarks>
public sealed class TokenConstraintCompiler
{
    public const int MaxEntries = 256;
    public const int MaxRefusals = 256;

    private readonly VocabularyTries _tries;
    private readonly long _budgetBytes;
    private readonly SemaphoreSlim _builds;
    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, TokenConstraint Value)>> _entries = [];
    private readonly LinkedList<(string Key, TokenConstraint Value)> _recency = [];
    private readonly Dictionary<string, ConstraintException> _refusals = [];
    private readonly Queue<string> _refusalOrder = new();
    private int _building;

    /// <param name="tokenizer">The served model's tokenizer.</param>
    /// <param name="vocabularySize">Width of the model's logits (masks cover it).</param>
    /// <param name="budgetBytes">Memory the cached constraints may hold together.</param>
    /// <param name="maxConcurrentBuilds">Constraints built at once; 0: half the cores, at least one.</param>
    public TokenConstraintCompiler(HfTokenizer tokenizer, int vocabularySize, long budgetBytes = 512L << 20, int maxConcurrentBuilds = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxConcurrentBuilds);
        _tries = new VocabularyTries(tokenizer, vocabularySize);
        _budgetBytes = budgetBytes;
        MaxConcurrentBuilds = maxConcurrentBuilds > 0 ? maxConcurrentBuilds : Math.Max(1, Environment.ProcessorCount / 2);
        _builds = new SemaphoreSlim(MaxConcurrentBuilds, MaxConcurrentBuilds);
    }

    public int MaxConcurrentBuilds { get; }

    /// <summary>Compiles served from the cache (refusals included), and automata built (refused ones included).</summary>
    public long Hits { get; private set; }
    public long Misses { get; private set; }

    /// <summary>Constraints cached now and the memory they hold.</summary>
    public (int Count, long Bytes) Cached
    {
        get
        {
            lock (_gate)
                return (_entries.Count, _recency.Sum(e => e.Value.Bytes));
        }
    }

    /// <summary>Called inside the build bound as each build starts, with the builds then running (tests).</summary>
    internal Action<int>? BuildStarting { get; set; }

    /// <summary>
    /// The compiled constraint; a <see cref="ConstraintException"/> names what is unsupported or malformed. Blocks while
    /// <see cref="MaxConcurrentBuilds"/> others build: for callers that hold a constraint compiled before.
    /// </summary>
    public TokenConstraint Compile(OutputConstraint constraint, string scope = "") =>
        CompileAsync(constraint, scope, CancellationToken.None).AsTask().GetAwaiter().GetResult();

    /// <summary>
    /// The compiled constraint, from the cache when it is there (synchronously); else built once the build bound lets it,
    /// waiting without a thread. A <see cref="ConstraintException"/> names what is unsupported or malformed.
    /// </summary>
    public ValueTask<TokenConstraint> CompileAsync(OutputConstraint constraint, CancellationToken ct) => CompileAsync(constraint, "", ct);

    /// <summary><see cref="CompileAsync(OutputConstraint, CancellationToken)"/> within <paramref name="scope"/>: nothing is shared with another scope.</summary>
    public ValueTask<TokenConstraint> CompileAsync(OutputConstraint constraint, string scope, CancellationToken ct)
    {
        string key = scope.Length == 0 ? constraint.CacheKey() : scope + "\u0000" + constraint.CacheKey();
        return Lookup(key) is { } cached ? ValueTask.FromResult(cached) : new ValueTask<TokenConstraint>(BuildAsync(constraint, key, ct));
    }

    private async Task<TokenConstraint> BuildAsync(OutputConstraint constraint, string key, CancellationToken ct)
    {
        await _builds.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Another request may have built it (or had it refused) while this one waited.
            if (Lookup(key) is { } cached)
                return cached;
            int running = Interlocked.Increment(ref _building);
            BuildStarting?.Invoke(running);
            TokenConstraint compiled;
            try
            {
                compiled = Build(constraint, _tries);
            }
            catch (ConstraintException refused)
            {
                lock (_gate)
                {
                    Misses++;
                    Refuse(key, refused);
                }

                throw;
            }
            finally
            {
                Interlocked.Decrement(ref _building);
            }

            lock (_gate)
            {
                Misses++;
                _entries[key] = _recency.AddFirst((key, compiled));
                Evict();
            }

            return compiled;
        }
        finally
        {
            _builds.Release();
        }
    }

    /// <summary>The cached constraint, or null; a cached refusal is thrown again (a new exception, the same problem).</summary>
    private TokenConstraint? Lookup(string key)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                // Cached constraints grow as requests explore them (masks, states): re-check the budget now and then, not
                // only when a new one arrives.
                if (++Hits % 64 == 0)
                    Evict();
                return node.Value.Value;
            }

            if (_refusals.TryGetValue(key, out var refused))
            {
                Hits++;
                throw new ConstraintException(refused.Path, refused.Problem);
            }
        }

        return null;
    }

    /// <summary>Remembers a refusal, forgetting the oldest beyond <see cref="MaxRefusals"/> (under the lock).</summary>
    private void Refuse(string key, ConstraintException refused)
    {
        if (!_refusals.TryAdd(key, refused))
            return;
        _refusalOrder.Enqueue(key);
        if (_refusalOrder.Count > MaxRefusals)
            _refusals.Remove(_refusalOrder.Dequeue());
    }

    /// <summary>Drops the least recently used constraints while over <see cref="MaxEntries"/> or the memory budget (under the lock).</summary>
    private void Evict()
    {
        long total = _recency.Sum(e => e.Value.Bytes);
        while (_recency.Count > 1 && (_recency.Count > MaxEntries || total > _budgetBytes))
        {
            var last = _recency.Last!;
            total -= last.Value.Value.Bytes;
            _recency.RemoveLast();
            _entries.Remove(last.Value.Key);
        }
    }

    private static TokenConstraint Build(OutputConstraint constraint, VocabularyTries tries)
    {
        var (trie, spelt) = tries.For(constraint.FreeText);
        var nfa = new ByteNfa();
        var whitespace = Whitespace(constraint);
        NfaFragment whole;
        switch (constraint.Kind)
        {
            case OutputConstraintKind.JsonSchema:
                JsonDocument schema;
                try
                {
                    schema = JsonDocument.Parse(constraint.Source, new JsonDocumentOptions { MaxDepth = 64 });
                }
                catch (JsonException ex)
                {
                    throw new ConstraintException("$", $"the schema is not valid JSON: {ex.Message}");
                }

                using (schema)
                    whole = JsonSchemaCompiler.Compile(nfa, schema.RootElement, whitespace);
                break;
            case OutputConstraintKind.JsonObject:
                whole = JsonSchemaCompiler.AnyObject(nfa, whitespace);
                break;
            case OutputConstraintKind.Regex:
                if (constraint.Source.Length == 0)
                    throw new ConstraintException("regex", "the pattern is empty");
                whole = RegexParser.Parse(constraint.Source, "regex").Build(nfa, nfa.Chars);
                break;
            case OutputConstraintKind.Choice:
                if (constraint.Choices.Count == 0)
                    throw new ConstraintException("choice", "the list of choices is empty");
                for (int i = 0; i < constraint.Choices.Count; i++)
                    if (string.IsNullOrEmpty(constraint.Choices[i]))
                        throw new ConstraintException($"choice[{i}]", "a choice must not be empty");
                whole = nfa.Alternation(constraint.Choices.Select(nfa.Literal).ToList());
                break;
            case OutputConstraintKind.StructuralTag:
                whole = StructuralTagCompiler.Compile(nfa, constraint.Source, whitespace);
                break;
            case OutputConstraintKind.Grammar:
                whole = (LarkGrammarParser.LooksLikeLark(constraint.Source) ? LarkGrammarParser.Parse(constraint.Source) : GrammarParser.Parse(constraint.Source))
                    .Build(nfa, nfa.Chars);
                if (whole.IsNever)
                    throw new ConstraintException("grammar", "the grammar derives no text at all");
                break;
            default:
                throw new ConstraintException("$", $"unknown constraint kind {constraint.Kind}");
        }

        if (constraint.FreeText is { } freeText)
        {
            if (freeText.Markers.Count == 0 || freeText.Markers.Any(string.IsNullOrEmpty))
                throw new ConstraintException("$", "the free text before the constraint needs non-empty end markers");
            var parts = freeText.Markers.Select(m => nfa.UntilFirst(VocabularyTries.Spell(m, spelt))).ToList();
            // Whitespace between the marker and the constrained text is the template's habit (a blank line after </think>).
            if (freeText.WhitespaceAfter < 0)
                throw new ConstraintException("$", "the whitespace after the free text cannot be negative");
            parts.Add(nfa.Repeat(() => nfa.Chars(JsonSchemaCompiler.JsonWhitespace), 0, freeText.WhitespaceAfter));
            parts.Add(whole);
            whole = nfa.Sequence([.. parts]);
        }

        try
        {
            nfa.Freeze(whole);
        }
        catch (ConstraintException ex) when (constraint.Kind == OutputConstraintKind.Grammar && ex.Path == "$")
        {
            throw new ConstraintException("grammar", "no finite text derives from the start rule: every way through it recurses forever");
        }

        return new TokenConstraint(new LazyDfa(nfa), trie, constraint.Kind.ToString());
    }

    /// <summary>The whitespace pattern, parsed; every character it can produce must be JSON whitespace.</summary>
    private static RegexNode? Whitespace(OutputConstraint constraint)
    {
        if (constraint.WhitespacePattern is not { } pattern)
            return null;
        if (constraint.Kind is not (OutputConstraintKind.JsonSchema or OutputConstraintKind.JsonObject or OutputConstraintKind.StructuralTag))
            throw new ConstraintException("whitespace_pattern", "applies to JSON output only");
        var node = RegexParser.Parse(pattern, "whitespace_pattern");
        if (!OnlyWhitespace(node))
            throw new ConstraintException("whitespace_pattern", "may produce only JSON whitespace (space, tab, line feed, carriage return)");
        return node;
    }

    private static bool OnlyWhitespace(RegexNode node) => node switch
    {
        RegexChars c => c.Set.Except(JsonSchemaCompiler.JsonWhitespace).IsEmpty,
        RegexSequence s => s.Parts.All(OnlyWhitespace),
        RegexAlternation a => a.Options.All(OnlyWhitespace),
        RegexRepeat r => OnlyWhitespace(r.Operand),
        _ => false,
    };
}
