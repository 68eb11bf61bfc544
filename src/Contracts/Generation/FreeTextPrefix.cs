namespace Serving.Contracts.Generation;

/// <summary>
/// The free text a held output may begin with: a reasoning model's thinking, which the format does not hold. The output
/// runs free up to and including the first occurrence of each marker in turn (a think model: <c>&lt;/think&gt;</c>;
/// gpt-oss: <c>&lt;|channel|&gt;final</c>, then <c>&lt;|message|&gt;</c>, as vLLM's harmony reasoning parser reads the
/// start of the final answer), then at most <paramref name="WhitespaceAfter"/> characters of JSON whitespace (a think
/// template's blank line after <c>&lt;/think&gt;</c>; harmony's body starts right after its marker), then the constrained text.
/// </summary>
/// <param name="Markers">The markers, in order; at least one, none empty.</param>
/// <param name="SpecialTokens">Special tokens, by their text, the free text may hold and the markers are spelt with
/// (harmony's channel markers are special tokens, which a held output otherwise never contains); a listed text the
/// tokenizer has no special token for is plain text.</param>
/// <param name="WhitespaceAfter">JSON whitespace characters allowed between the last marker and the held text, at most;
/// bounded, so a model cannot spend its whole output on blank space before the answer.</param>
public sealed record FreeTextPrefix(IReadOnlyList<string> Markers, IReadOnlyList<string> SpecialTokens, int WhitespaceAfter = 0)
{
    /// <summary>Free text up to and including the first <paramref name="marker"/>, no special tokens, then at most <paramref name="whitespaceAfter"/> whitespace characters.</summary>
    public static FreeTextPrefix Until(string marker, int whitespaceAfter = 0) => new([marker], [], whitespaceAfter);

    /// <summary>An unambiguous text of the whole value, for cache keys.</summary>
    public string Key() =>
        string.Concat(Markers.Select(m => $"{m.Length}:{m}")) + "|" + string.Concat(SpecialTokens.Select(t => $"{t.Length}:{t}")) + "|" + WhitespaceAfter;

    public bool Equals(FreeTextPrefix? other) =>
        other is not null && Markers.SequenceEqual(other.Markers) && SpecialTokens.SequenceEqual(other.SpecialTokens)
        && WhitespaceAfter == other.WhitespaceAfter;

    public override int GetHashCode() => HashCode.Combine(Markers.Count, Markers.Count > 0 ? Markers[0] : "", SpecialTokens.Count);
}
