namespace Serving.Engine.Constraints;

/// <summary>
/// A terminal inside a Lark rule: the text Lark's <c>%ignore</c> skips (any of <paramref name="Ignored"/>, any number of
/// times) may come before it. Lark's lexer drops ignored text between any two tokens; a terminal reached this way has
/// one place for it before each terminal (and the start rule one after its last), so the language is Lark's without a
/// lexer. <paramref name="Ignored"/> is the parser's list, complete once the grammar is read (a directive may follow the
/// rules it applies to); empty, this is the terminal alone.
/// </summary>
internal sealed record LarkIgnorable(RegexNode Terminal, IReadOnlyList<RegexNode> Ignored) : RegexNode
{
    public override NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars) => Ignored.Count == 0
        ? Terminal.Build(nfa, chars)
        : nfa.Sequence(Skipped(Ignored).Build(nfa, chars), Terminal.Build(nfa, chars));

    /// <summary>Any number of the ignored terminals.</summary>
    public static RegexNode Skipped(IReadOnlyList<RegexNode> ignored) =>
        new RegexRepeat(ignored.Count == 1 ? ignored[0] : new RegexAlternation(ignored), 0, null);
}
