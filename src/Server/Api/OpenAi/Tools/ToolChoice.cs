using System.Text.Json;
using Serving.Contracts.Generation;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// What a chat request asks of its tools: OpenAI's <c>tool_choice</c> (absent: <c>auto</c> when there are tools, else
/// <c>none</c>) and <c>parallel_tool_calls</c> (absent: true), with the request's tools.
/// </summary>
internal sealed record ToolChoice(ToolChoiceKind Kind, IReadOnlyList<FunctionTool> Tools, FunctionTool? Function, bool Parallel)
{
    /// <summary>Whether the chat template is given the tools.</summary>
    public bool ShowsTools => Kind != ToolChoiceKind.None;

    /// <summary>Whether the output is constrained to calls (<see cref="Constraint"/>).</summary>
    public bool Forced => Kind is ToolChoiceKind.Required or ToolChoiceKind.Named;

    public static ToolChoice Read(JsonFields f)
    {
        var tools = FunctionTool.ReadAll(f);
        bool parallel = f.Bool("parallel_tool_calls") ?? true;
        var kind = f.Get("tool_choice") switch
        {
            null => tools.Count > 0 ? ToolChoiceKind.Auto : ToolChoiceKind.None,
            { ValueKind: JsonValueKind.String } c => c.GetString() switch
            {
                "auto" => ToolChoiceKind.Auto,
                "none" => ToolChoiceKind.None,
                "required" => ToolChoiceKind.Required,
                _ => throw JsonFields.Bad("tool_choice", "must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}"),
            },
            { ValueKind: JsonValueKind.Object } => ToolChoiceKind.Named,
            _ => throw JsonFields.Bad("tool_choice", "must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}"),
        };
        if (kind is ToolChoiceKind.Required or ToolChoiceKind.Named && tools.Count == 0)
            throw JsonFields.Bad("tools", $"must list at least one function when tool_choice is {(kind == ToolChoiceKind.Required ? "'required'" : "a named function")}");
        FunctionTool? function = kind == ToolChoiceKind.Named ? Named(f, tools) : null;
        return new ToolChoice(kind, tools, function, parallel);
    }

    private static FunctionTool Named(JsonFields f, IReadOnlyList<FunctionTool> tools)
    {
        var choice = f.Object("tool_choice")!;
        if (choice.Get("type") is { } type && (type.ValueKind != JsonValueKind.String || type.GetString() != "function"))
            throw JsonFields.Bad("tool_choice.type", "must be 'function'");
        string name = choice.Object("function")?.Get("name") is { ValueKind: JsonValueKind.String } n ? n.GetString()!
            : throw JsonFields.Bad("tool_choice.function.name", "must be a string naming one of the request's tools");
        return tools.FirstOrDefault(t => t.Name == name) ?? throw JsonFields.Bad("tool_choice.function.name", $"names '{name}', which is not among the request's tools");
    }

    /// <summary>
    /// The output a forced choice allows, and the request field its compile errors name: a named function's arguments
    /// (its <c>parameters</c> schema), or for <c>required</c> a JSON list of one or more (one, without parallel calls)
    /// <c>{"name", "parameters"}</c> objects, each name with its own function's schema — vLLM's format for it. Null
    /// when the choice forces nothing.
    /// </summary>
    public (OutputConstraint Constraint, string Field)? Constraint() => Kind switch
    {
        ToolChoiceKind.Named => (OutputConstraint.JsonSchema(ToolCallSchemas.Arguments(Function!)), $"tools[{IndexOf(Function!)}].function.parameters"),
        ToolChoiceKind.Required => (OutputConstraint.JsonSchema(ToolCallSchemas.CallList(Tools, Parallel)), "tools"),
        _ => null,
    };

    private int IndexOf(FunctionTool tool)
    {
        for (int i = 0; i < Tools.Count; i++)
            if (ReferenceEquals(Tools[i], tool))
                return i;
        return -1;
    }
}
