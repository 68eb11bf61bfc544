namespace Serving.Engine.Constraints;

/// <summary>
/// A grammar's rules and, while an automaton is built from them, how often each rule is being expanded around the
/// current point: what bounds a recursive rule's unrolling. One build at a time (the compiler's builds are sequential per
/// grammar).
/// </summary>
internal sealed class GrammarExpansion(IReadOnlyDictionary<string, RegexNode> rules, int maxRecursion)
{
    private readonly Dictionary<string, int> _open = new(StringComparer.Ordinal);

    public int MaxRecursion => maxRecursion;

    public NfaFragment Build(string name, ByteNfa nfa, Func<CodePointSet, NfaFragment> chars)
    {
        int open = _open.GetValueOrDefault(name);
        if (open >= maxRecursion)
            return NfaFragment.Never;
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
