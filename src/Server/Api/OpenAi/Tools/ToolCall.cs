using System.Text;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// One call read from a model's output: OpenAI's <c>{"id", "type": "function", "function": {"name", "arguments"}}</c>.
/// <see cref="Arguments"/> is the JSON text of the arguments as the model wrote it; it grows while a forced call of a
/// named function or a Hermes call streams, and is complete otherwise.
/// </summary>
internal sealed class ToolCall(string id, string name)
{
    public string Id { get; } = id;
    public string Name { get; } = name;
    public StringBuilder Arguments { get; } = new();
}
