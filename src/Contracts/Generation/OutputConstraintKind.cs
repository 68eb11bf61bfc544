namespace Serving.Contracts.Generation;

/// <summary>What an <see cref="OutputConstraint"/> requires of the output.</summary>
public enum OutputConstraintKind
{
    /// <summary>Compact JSON valid against a JSON Schema (OpenAI's <c>json_schema</c>, vLLM's <c>json</c>).</summary>
    JsonSchema,

    /// <summary>Any JSON object (OpenAI's <c>json_object</c>).</summary>
    JsonObject,

    /// <summary>Text that fully matches a regular expression (vLLM's <c>regex</c>).</summary>
    Regex,

    /// <summary>Exactly one of a list of strings (vLLM's <c>choice</c>).</summary>
    Choice,

    /// <summary>Text in the language of a GBNF context-free grammar (vLLM's <c>grammar</c>), recursion unrolled to a bounded depth.</summary>
    Grammar,

    /// <summary>Free text in which every trigger starts one of the structures: begin, JSON against its schema, end (xgrammar's structural tag).</summary>
    StructuralTag,
}
