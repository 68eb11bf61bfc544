namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>OpenAI's <c>tool_choice</c>.</summary>
internal enum ToolChoiceKind
{
    /// <summary>The template does not see the tools; the model answers in text.</summary>
    None,

    /// <summary>The model decides; its calls are read from its text by the configured tool-call parser, if any.</summary>
    Auto,

    /// <summary>At least one call, forced by constraining the output to a list of calls.</summary>
    Required,

    /// <summary>One call of a named function, forced by constraining the output to that function's arguments.</summary>
    Named,
}
