namespace Serving.Engine.Constraints;

/// <summary><paramref name="Operand"/> repeated <paramref name="Min"/> to <paramref name="Max"/> times (null: unbounded).</summary>
internal sealed record RegexRepeat(RegexNode Operand, int Min, int? Max) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => nfa.Repeat(() => Operand.Build(nfa, chars), Min, Max);
}
