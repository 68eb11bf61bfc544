namespace Serving.Engine.Constraints;

/// <summary>One character from <paramref name="Set"/>.</summary>
internal sealed record RegexChars(CodePointSet Set) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => chars(Set);
}
