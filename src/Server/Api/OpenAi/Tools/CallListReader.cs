using System.Text;


namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Calls forced by <c>tool_choice: "required"</c>: the text is the list <see cref="ToolCallSchemas.CallList"/> allows,
/// <c>[{"name": ..., "parameters": {...}}, ...]</c>, each call read as soon as its object closes. A list cut short
/// (max_tokens) keeps the calls it completed; with none, the text is the content, as written.
/// </summary>
internal sealed class CallListReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private readonly StringBuilder _text = new();
    private JsonNesting _nesting;

    /// <summary>Where in <see cref="_text"/> the open call's object starts; −1 between calls.</summary>
    private int _callStart = -1;

    protected override void Drain(bool final)
    {
        int from = _text.Length;
        _text.Append(Pending);
        Pending = "";
        for (int i = from; i < _text.Length; i++)
        {
            int step = _nesting.Read(_text[i]);
            if (step > 0 && _nesting.Depth == 2)
                _callStart = i;
            else if (step < 0 && _nesting.Depth == 1 && _callStart >= 0)
            {
                TryCall(_text.ToString(_callStart, i + 1 - _callStart), "parameters");
                _callStart = -1;
            }
        }

        if (final && Output.Calls.Count == 0)
            Say(_text.ToString());
    }
}
