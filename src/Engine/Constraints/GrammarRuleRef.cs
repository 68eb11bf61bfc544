namespace Serving.Engine.Constraints;

/// <summary>
/// A reference to a grammar rule: each build adds a fresh copy of the rule's language, unless the rule is being expanded
/// around it — then a call of the rule's machine (<see cref="GrammarExpansion"/>), so recursion nests without a bound.
/// </summary>
internal sealed record GrammarRuleRef(string Name, GrammarExpansion Expansion) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => Expansion.Build(Name, nfa, chars);
}
