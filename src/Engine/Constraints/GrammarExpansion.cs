namespace Serving.Engine.Constraints;

/// <summary>
/// A grammar's rules and, while an automaton is built from them, how often each rule is being expanded around the
/// current point: what bounds a recursive rule's unrolling. The expansions are counted too: a recursive rule under a
/// repetition (<c>a ::= a{1000}</c>) multiplies them without adding a state where the recursion bound cuts every copy,
/// so the automaton's state bound alone would not stop the work. One build at a time.
/// </summary>
internal sealed class GrammarExpansion(IReadOnlyDictionary<string, RegexNode> rules)
{
    /// <summary>How often a rule may appear in its own expansion: the nesting depth of recursive rules.</summary>
    public const int MaxRecursion = 5;

    /// <summary>Rule expansions one build may make.</summary>
    public const int MaxExpansions = 100_000;

    private readonly Dictionary<string, int> _open = new(StringComparer.Ordinal);
    private int _expansions;

    public NfaFragment Build(string name, ByteNfa nfa, Func<CodePointSet, NfaFragment> chars)
    {
        int open = _open.GetValueOrDefault(name);
        if (open >= MaxRecursion)
            return NfaFragment.Never;
        if (++_expansions > MaxExpansions)
            throw new ConstraintException("grammar", $"expands its rules more than {MaxExpansions:N0} times (recursive rules under repetitions multiply their copies); nest them less");
        _open[name] = open + 1;
        try
        {
            return rules[name].Build(nfa, chars);
        }
        finally
        {
            _open[name] = open;
        }
    }
}
