namespace Serving.Contracts.Generation;

/// <summary>
/// Structured output: the output must be, by construction, text of this form. The engine compiles it once per distinct
/// value into an automaton over the model's tokens and masks every sampling step with it.
/// </summary>
/// <param name="Kind">What is required.</param>
/// <param name="Source">The JSON Schema as JSON text (<see cref="OutputConstraintKind.JsonSchema"/>) or the pattern
/// (<see cref="OutputConstraintKind.Regex"/>); empty otherwise.</param>
/// <param name="Choices">The allowed outputs (<see cref="OutputConstraintKind.Choice"/>); empty otherwise.</param>
/// <param name="WhitespacePattern">JSON kinds only: a regular expression of JSON whitespace written between JSON tokens
/// (vLLM's <c>whitespace_pattern</c>); null writes compact JSON.</param>
/// <param name="FreeText">When set, the text the output first runs free through (a reasoning model's thinking: its
/// reasoning is not held to the format); null constrains the output from its first byte.</param>
public sealed record OutputConstraint(OutputConstraintKind Kind, string Source, IReadOnlyList<string> Choices, string? WhitespacePattern = null,
    FreeTextPrefix? FreeText = null)
{
    public static OutputConstraint JsonSchema(string schemaJson) => new(OutputConstraintKind.JsonSchema, schemaJson, []);
    public static OutputConstraint JsonObject() => new(OutputConstraintKind.JsonObject, "", []);
    public static OutputConstraint Regex(string pattern) => new(OutputConstraintKind.Regex, pattern, []);
    public static OutputConstraint Choice(IReadOnlyList<string> choices) => new(OutputConstraintKind.Choice, "", choices);
    public static OutputConstraint Grammar(string gbnf) => new(OutputConstraintKind.Grammar, gbnf, []);
    public static OutputConstraint StructuralTag(string spec) => new(OutputConstraintKind.StructuralTag, spec, []);

    /// <summary>A stable content key: equal constraints share one compiled automaton.</summary>
    public string CacheKey()
    {
        var text = $"{Kind}\u0000{Source}\u0000{WhitespacePattern?.Length ?? -1}:{WhitespacePattern}\u0000{(FreeText is null ? "-" : FreeText.Key())}\u0000"
            + string.Join("\u0000", Choices.Select(c => $"{c.Length}:{c}"));
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
    }

    public bool Equals(OutputConstraint? other) => other is not null && Kind == other.Kind && Source == other.Source && Choices.SequenceEqual(other.Choices)
        && WhitespacePattern == other.WhitespacePattern && Equals(FreeText, other.FreeText);

    public override int GetHashCode() => HashCode.Combine(Kind, Source, Choices.Count);
}
