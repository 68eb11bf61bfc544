using System.Text;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>What a chat choice has said so far, as the reader of its output settled it: text, then tool calls.</summary>
internal sealed class ChatOutput
{
    public StringBuilder Content { get; } = new();
    public List<ToolCall> Calls { get; } = [];
}
