namespace Serving.Engine.Constraints;

/// <summary>
/// A parsed regular expression (<see cref="RegexParser"/>). <see cref="Build"/> adds a fresh copy of its language to an
/// automaton; a repetition builds its operand once per copy. The <c>chars</c> function turns a character class into a
/// fragment: plain UTF-8 for a <c>regex</c> constraint, JSON-escaped where the text sits inside a JSON string.
/// </summary>
internal abstract record RegexNode
{
    public abstract NfaFragment Build(ByteNfa nfa, Func<CodePointSet, NfaFragment> chars);
}
