using System.Text.RegularExpressions;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Llama 3.1–3.3's JSON tool calls (vLLM's <c>llama3_json</c> parser): text that starts (after whitespace) with
/// <c>&lt;|python_tag|&gt;</c> or <c>{</c> is one or more <c>{"name": ..., "parameters": {...}}</c> objects separated by
/// <c>;</c>; any other text is all content. Text after the calls that is not another call is content. A call written
/// <c>{"name": "f", "parameters": {</c> (or <c>"arguments"</c>) is a call from there on: its arguments stream as they are
/// written, up to the object's matching brace, and the rest of the call object up to its own closing brace is skipped.
/// </summary>
internal sealed partial class Llama3JsonToolCallReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private const string PythonTag = "<|python_tag|>";

    private enum State { Start, Calls, Content }

    private State _state = State.Start;
    private int _scanned;
    private JsonNesting _nesting;

    /// <summary>The call whose arguments are streaming, and the rest of its object once they closed (depth 1 at their end).</summary>
    private ArgumentStream? _streaming;
    private JsonNesting _rest;

    [GeneratedRegex("""^\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"(?:parameters|arguments)"\s*:\s*\{""")]
    private static partial Regex StreamingStart();

    protected override void Drain(bool final)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Start:
                    string rest = Pending.TrimStart();
                    if (rest.Length == 0 || (!final && rest.Length < PythonTag.Length && PythonTag.StartsWith(rest, StringComparison.Ordinal)))
                    {
                        if (final)
                            _state = State.Content;
                        else
                            return;
                    }
                    else if (rest.StartsWith(PythonTag, StringComparison.Ordinal) || rest[0] == '{')
                    {
                        Pending = rest.StartsWith(PythonTag, StringComparison.Ordinal) ? rest[PythonTag.Length..] : rest;
                        _state = State.Calls;
                    }
                    else
                        _state = State.Content;
                    continue;

                case State.Content:
                    Say(Pending);
                    Pending = "";
                    return;

                default:
                    if (!ReadCalls(final))
                        return;
                    continue;
            }
        }
    }

    /// <summary>Reads calls off <see cref="ToolCallReader.Pending"/>; false when it needs more text, true when the state changed.</summary>
    private bool ReadCalls(bool final)
    {
        if (_streaming is null && Pending.StartsWith('{') && StartStreaming(StreamingStart()) is { } started)
        {
            _streaming = started;
            _rest = default;
            _rest.Read('{');                                 // inside the call object once its arguments close
            _nesting = default;
            _scanned = 0;
        }

        if (_streaming is not null)
            return StreamCall(final);
        if (_nesting.Depth == 0)
        {
            int start = 0;
            while (start < Pending.Length && (char.IsWhiteSpace(Pending[start]) || Pending[start] == ';'))
                start++;
            Pending = Pending[start..];
            _scanned = 0;
            if (Pending.Length == 0)
                return false;
            if (Pending[0] != '{')
            {
                _state = State.Content;
                return true;
            }
        }

        for (; _scanned < Pending.Length; _scanned++)
        {
            if (_nesting.Read(Pending[_scanned]) < 0 && _nesting.Depth == 0)
            {
                string json = Pending[..(_scanned + 1)];
                Pending = Pending[(_scanned + 1)..];
                _scanned = 0;
                if (TryCall(json, "parameters", "arguments"))
                    return true;
                Pending = json + Pending;             // not a call: it and all after it are content
                _state = State.Content;
                return true;
            }
        }

        if (final)
            _state = State.Content;                     // a call cut short stays in the content
        return final;
    }

    /// <summary>
    /// Appends the streaming call's arguments, then skips the rest of its object; true when the call is done (reading goes
    /// on after it), false when more text is needed or the text ended.
    /// </summary>
    private bool StreamCall(bool final)
    {
        var stream = _streaming!.Value;
        if (!stream.Closed)
            Pending = Pending[stream.Read(Pending)..];
        _streaming = stream;
        int i = 0;
        while (stream.Closed && i < Pending.Length && _rest.Depth > 0)
            _rest.Read(Pending[i++]);
        Pending = Pending[i..];
        if (stream.Closed && _rest.Depth == 0 || final)
        {
            _streaming = null;
            return !final || Pending.Length > 0;
        }

        return false;
    }
}
