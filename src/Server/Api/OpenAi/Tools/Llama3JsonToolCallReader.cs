namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Llama 3.1–3.3's JSON tool calls (vLLM's <c>llama3_json</c> parser): text that starts (after whitespace) with
/// <c>&lt;|python_tag|&gt;</c> or <c>{</c> is one or more <c>{"name": ..., "parameters": {...}}</c> objects separated by
/// <c>;</c>; any other text is all content. Text after the calls that is not another call is content.
/// </summary>
internal sealed class Llama3JsonToolCallReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private const string PythonTag = "<|python_tag|>";

    private enum State { Start, Calls, Content }

    private State _state = State.Start;
    private string _pending = "";
    private int _scanned;
    private JsonNesting _nesting;

    public override void Push(string delta)
    {
        _pending += delta;
        Drain(final: false);
    }

    public override void Finish()
    {
        Drain(final: true);
        EndOfText();
    }

    private void Drain(bool final)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Start:
                    string rest = _pending.TrimStart();
                    if (rest.Length == 0 || (!final && rest.Length < PythonTag.Length && PythonTag.StartsWith(rest, StringComparison.Ordinal)))
                    {
                        if (final)
                            _state = State.Content;
                        else
                            return;
                    }
                    else if (rest.StartsWith(PythonTag, StringComparison.Ordinal) || rest[0] == '{')
                    {
                        _pending = rest.StartsWith(PythonTag, StringComparison.Ordinal) ? rest[PythonTag.Length..] : rest;
                        _state = State.Calls;
                    }
                    else
                        _state = State.Content;
                    continue;

                case State.Content:
                    Say(_pending);
                    _pending = "";
                    return;

                default:
                    if (!ReadCalls(final))
                        return;
                    continue;
            }
        }
    }

    /// <summary>Reads calls off <see cref="_pending"/>; false when it needs more text, true when the state changed.</summary>
    private bool ReadCalls(bool final)
    {
        if (_nesting.Depth == 0)
        {
            int start = 0;
            while (start < _pending.Length && (char.IsWhiteSpace(_pending[start]) || _pending[start] == ';'))
                start++;
            _pending = _pending[start..];
            _scanned = 0;
            if (_pending.Length == 0)
                return false;
            if (_pending[0] != '{')
            {
                _state = State.Content;
                return true;
            }
        }

        for (; _scanned < _pending.Length; _scanned++)
        {
            if (_nesting.Read(_pending[_scanned]) < 0 && _nesting.Depth == 0)
            {
                string json = _pending[..(_scanned + 1)];
                _pending = _pending[(_scanned + 1)..];
                _scanned = 0;
                if (TryCall(json, "parameters", "arguments"))
                    return true;
                _pending = json + _pending;             // not a call: it and all after it are content
                _state = State.Content;
                return true;
            }
        }

        if (final)
            _state = State.Content;                     // a call cut short stays in the content
        return final;
    }
}
