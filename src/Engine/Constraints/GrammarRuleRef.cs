namespace Serving.Engine.Constraints;

/// <summary>
/// A reference to a grammar rule: each build adds a fresh copy of the rule's language, unless the rule already appears
/// <see cref="GrammarExpansion.MaxRecursion"/> times in the expansion around it — then the empty language (the recursion's
/// depth bound: the branches that need deeper nesting disappear).
/// </summary>
internal sealed record GrammarRuleRef(string Name, GrammarExpansion Expansion) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => Expansion.Build(Name, nfa, chars);
}
