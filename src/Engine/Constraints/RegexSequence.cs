namespace Serving.Engine.Constraints;

/// <summary>Its parts one after another (none: the empty string).</summary>
internal sealed record RegexSequence(IReadOnlyList<RegexNode> Parts) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => nfa.Sequence(Parts.Select(p => p.Build(nfa, chars)).ToList());
}
