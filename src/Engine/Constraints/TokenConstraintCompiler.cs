using System.Text.Json;
using Serving.Contracts.Generation;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Constraints;

/// <summary>
/// Compiles <see cref="OutputConstraint"/>s against one model's vocabulary and keeps the results: a constraint is compiled
/// once per distinct content (<see cref="OutputConstraint.CacheKey"/>) and shared by every request that sends it. The
/// cache holds at most <see cref="MaxEntries"/> constraints and evicts the least recently used while their memory (which
/// grows as requests explore them) exceeds its budget. Thread-safe.
/// </summary>
public sealed class TokenConstraintCompiler
{
    public const int MaxEntries = 256;

    private readonly Lazy<TokenTrie> _trie;
    private readonly long _budgetBytes;
    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, TokenConstraint Value)>> _entries = [];
    private readonly LinkedList<(string Key, TokenConstraint Value)> _recency = [];

    /// <param name="tokenizer">The served model's tokenizer.</param>
    /// <param name="vocabularySize">Width of the model's logits (masks cover it).</param>
    /// <param name="budgetBytes">Memory the cached constraints may hold together.</param>
    public TokenConstraintCompiler(HfTokenizer tokenizer, int vocabularySize, long budgetBytes = 512L << 20)
    {
        _trie = new Lazy<TokenTrie>(() => TokenTrie.Build(tokenizer, vocabularySize));
        _budgetBytes = budgetBytes;
    }

    /// <summary>Compiles served from the cache, and compiles done.</summary>
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

    /// <summary>The compiled constraint; a <see cref="ConstraintException"/> names what is unsupported or malformed.</summary>
    public TokenConstraint Compile(OutputConstraint constraint)
    {
        string key = constraint.CacheKey();
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
        }

        // Compiled outside the lock: a large schema must not hold up requests whose constraints are cached.
        var compiled = Build(constraint, _trie.Value);
        lock (_gate)
        {
            Misses++;
            if (_entries.TryGetValue(key, out var raced))
                return raced.Value.Value;
            _entries[key] = _recency.AddFirst((key, compiled));
            Evict();
        }

        return compiled;
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

    private static TokenConstraint Build(OutputConstraint constraint, TokenTrie trie)
    {
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
            default:
                throw new ConstraintException("$", $"unknown constraint kind {constraint.Kind}");
        }

        nfa.Freeze(whole);
        return new TokenConstraint(new LazyDfa(nfa), trie, constraint.Kind.ToString());
    }

    /// <summary>The whitespace pattern, parsed; every character it can produce must be JSON whitespace.</summary>
    private static RegexNode? Whitespace(OutputConstraint constraint)
    {
        if (constraint.WhitespacePattern is not { } pattern)
            return null;
        if (constraint.Kind is not (OutputConstraintKind.JsonSchema or OutputConstraintKind.JsonObject))
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
