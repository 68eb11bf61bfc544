namespace Serving.Engine.Constraints;

/// <summary>
/// A grammar's rules and how a reference to one is built into an automaton: in place, unless the rule is already being
/// expanded around the reference — a recursion — in which case the reference becomes a call of the rule's machine
/// (<see cref="ByteNfa.Call"/>), built once. So recursion nests without a bound while every rule is built at most once
/// per place it appears outside its own recursion plus once as a machine. Direct left recursion (<c>a ::= a "+" b | b</c>)
/// is rewritten first into the same language without it (<c>a ::= b ("+" b)*</c>); left recursion through other rules
/// nests <see cref="LazyDfa.MaxLeftRecursion"/> levels deep. The expansions are counted: references to non-recursive
/// rules under repetitions multiply copies (<c>a ::= b{1000}</c>, <c>b ::= c{1000}</c>), so the automaton's state bound
/// alone would not bound the work. One build at a time.
/// </summary>
internal sealed class GrammarExpansion(IReadOnlyDictionary<string, RegexNode> rules)
{
    /// <summary>Rule expansions one build may make.</summary>
    public const int MaxExpansions = 100_000;

    private HashSet<string> _open = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _machines = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RegexNode> _bodies = new(StringComparer.Ordinal);
    private int _expansions;

    public NfaFragment Build(string name, ByteNfa nfa, Func<CodePointSet, NfaFragment> chars)
    {
        if (_open.Contains(name))
            return nfa.Call(Machine(name, nfa, chars));
        if (++_expansions > MaxExpansions)
            throw new ConstraintException("grammar", $"expands its rules more than {MaxExpansions:N0} times (rules referenced under repetitions multiply their copies); nest them less");
        _open.Add(name);
        try
        {
            return Body(name).Build(nfa, chars);
        }
        finally
        {
            _open.Remove(name);
        }
    }

    /// <summary>The machine of <paramref name="name"/>, defined on its first call: its body with only itself open.</summary>
    private int Machine(string name, ByteNfa nfa, Func<CodePointSet, NfaFragment> chars)
    {
        if (_machines.TryGetValue(name, out int machine))
            return machine;
        machine = nfa.NewMachine();
        _machines[name] = machine;
        var around = _open;
        _open = new HashSet<string>(StringComparer.Ordinal) { name };
        try
        {
            nfa.DefineMachine(machine, Body(name).Build(nfa, chars));
        }
        finally
        {
            _open = around;
        }

        return machine;
    }

    /// <summary>The rule's definition, direct left recursion rewritten: <c>a ::= a x | a y | b | c</c> → <c>(b | c) (x | y)*</c>.</summary>
    private RegexNode Body(string name)
    {
        if (_bodies.TryGetValue(name, out var body))
            return body;
        var definition = rules[name];
        var options = definition is RegexAlternation alternation ? alternation.Options : [definition];
        var bases = new List<RegexNode>();
        var tails = new List<RegexNode>();
        foreach (var option in options)
        {
            if (option is GrammarRuleRef self && self.Name == name)
                continue;                                         // a ::= a | ...: adds nothing
            if (option is RegexSequence { Parts: [GrammarRuleRef { Name: var first }, ..] } sequence && first == name)
                tails.Add(new RegexSequence(sequence.Parts.Skip(1).ToList()));
            else
                bases.Add(option);
        }

        body = tails.Count == 0 && bases.Count == options.Count ? definition
            : new RegexSequence([Alternative(bases), new RegexRepeat(Alternative(tails), 0, null)]);
        _bodies[name] = body;
        return body;
    }

    /// <summary>One of <paramref name="options"/>; none: the empty language (a rule with only left-recursive options derives nothing).</summary>
    private static RegexNode Alternative(List<RegexNode> options) => options.Count == 1 ? options[0] : new RegexAlternation(options);
}
