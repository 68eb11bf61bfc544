using System.Text;
using Serving.Server.Api.OpenAi.Tools;

namespace Serving.Server.Api.OpenAi;

/// <summary>What a chat choice has said so far, as the readers of its text settled it: reasoning, text, tool calls.</summary>
internal sealed class ChatOutput
{
    /// <summary>The model's reasoning (<see cref="Reasoning.ReasoningReader"/>); empty without a reasoning parser.</summary>
    public StringBuilder Reasoning { get; } = new();

    public StringBuilder Content { get; } = new();
    public List<ToolCall> Calls { get; } = [];
}
