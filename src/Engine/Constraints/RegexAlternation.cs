namespace Serving.Engine.Constraints;

/// <summary>Any one of its options.</summary>
internal sealed record RegexAlternation(IReadOnlyList<RegexNode> Options) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => nfa.Alternation(Options.Select(o => o.Build(nfa, chars)).ToList());
}
