using System.Text.RegularExpressions;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Mistral's tool calls (vLLM's <c>mistral</c> parser): after the <c>[TOOL_CALLS]</c> control token either a JSON list
/// <c>[{"name": ..., "arguments": {...}}, ...]</c> (tokenizer versions before 11) or <c>name[ARGS]{...}</c> (11 and later,
/// one call per <c>[TOOL_CALLS]</c>); text before it is content. The markers are special tokens, so a request read by
/// this parser keeps special tokens in its text (<see cref="ToolCallParsers.ShowsSpecialTokens"/>). In the second form the
/// call is known at <c>[ARGS]</c>: arguments that start with <c>{</c> stream as they are written, up to the object's matching
/// brace, as vLLM's parser streams them. In the list, an element written <c>{"name": …, "arguments": {</c> is a call from
/// its arguments' opening brace, and they stream likewise; the rest of that element is the call's own closing. Other
/// elements are read whole. IBM Granite 3 writes the list form after its own marker, <c>&lt;|tool_call|&gt;</c> (vLLM's
/// <c>granite</c> parser): the same reader with that <paramref name="marker"/>.
/// </summary>
internal sealed partial class MistralToolCallReader(ChatOutput output, Func<string> newId, string marker = MistralToolCallReader.MistralMarker)
    : ToolCallReader(output, newId)
{
    public const string MistralMarker = "[TOOL_CALLS]", GraniteMarker = "<|tool_call|>";
    private readonly string _marker = marker;
    private const string ArgumentsMarker = "[ARGS]";

    private enum State { Content, AfterMarker, List, ListArguments, Name, Arguments }

    private State _state = State.Content;
    private int _scanned;
    private JsonNesting _nesting;
    private int _callStart = -1;
    private string _name = "";
    private ArgumentStream? _streaming;

    /// <summary>The list element being read is a call whose arguments streamed: its text is not read again at its end.</summary>
    private bool _streamedElement;

    /// <summary>A list element's start up to its arguments' opening brace, the name group 1.</summary>
    [GeneratedRegex("""^\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*\{""")]
    private static partial Regex ElementStart();

    /// <summary><see cref="ElementStart"/> ending exactly at the brace read now.</summary>
    [GeneratedRegex("""^\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*\{$""")]
    private static partial Regex ElementOpening();

    protected override void Drain(bool final)
    {
        while (Step(final))
        {
        }

        if (!final)
            return;
        if (_streaming is not null || _streamedElement)
        {
            _streaming = null;                            // a streaming call cut short keeps what was written
            _streamedElement = false;
            _state = State.Content;
            Pending = "";
            return;
        }

        // A call cut short stays in the content as written.
        Say(_state switch
        {
            State.AfterMarker or State.Name => _marker + Pending,
            State.List when Pending.StartsWith('[') => _marker + Pending,
            State.Arguments => _marker + _name + ArgumentsMarker + Pending,
            _ => Pending,
        });
        Pending = "";
    }

    /// <summary>Reads what it can of <see cref="ToolCallReader.Pending"/>; true when the state changed and there may be more to read.</summary>
    private bool Step(bool final)
    {
        switch (_state)
        {
            case State.Content:
                if (!SayUntil(_marker, final))
                    return false;
                _state = State.AfterMarker;
                return true;

            case State.AfterMarker:
                string rest = Pending.TrimStart();
                if (rest.Length == 0)
                    return false;
                Pending = rest;
                _scanned = 0;
                _nesting = default;
                _state = rest[0] == '[' ? State.List : State.Name;
                return true;

            case State.List:
                for (; _scanned < Pending.Length; _scanned++)
                {
                    if (Pending[_scanned] == '{' && _nesting.Depth == 2 && _callStart >= 0 && !_streamedElement
                        && ElementOpening().IsMatch(Pending.AsSpan(_callStart, _scanned + 1 - _callStart)))
                    {
                        // The brace is the stream's to read: the element's nesting stays where it is until the arguments close.
                        Pending = Pending[_callStart..];
                        _scanned -= _callStart;
                        _callStart = 0;
                        _streaming = StartStreaming(ElementStart());
                        _state = State.ListArguments;
                        return true;
                    }

                    int step = _nesting.Read(Pending[_scanned]);
                    if (step > 0 && _nesting.Depth == 2)
                        _callStart = _scanned;
                    else if (step < 0 && _nesting.Depth == 1 && _callStart >= 0)
                    {
                        string json = Pending[_callStart..(_scanned + 1)];
                        if (!_streamedElement && !TryCall(json, "arguments"))
                            Say(json);
                        Pending = Pending[(_scanned + 1)..];
                        _scanned = -1;
                        _callStart = -1;
                        _streamedElement = false;
                    }
                    else if (step < 0 && _nesting.Depth <= 0)
                    {
                        Pending = Pending[(_scanned + 1)..];
                        _state = State.Content;
                        return true;
                    }
                }

                return false;

            case State.ListArguments:
                var element = _streaming!.Value;
                Pending = Pending[element.Read(Pending)..];
                _streaming = element.Closed ? null : element;
                if (!element.Closed)
                    return false;
                _streamedElement = true;
                _callStart = 0;
                _scanned = 0;
                _state = State.List;
                return true;

            case State.Name:
                int args = Pending.IndexOf(ArgumentsMarker, StringComparison.Ordinal);
                if (args < 0)
                    return false;
                _name = Pending[..args].Trim();
                Pending = Pending[(args + ArgumentsMarker.Length)..];
                _scanned = 0;
                _nesting = default;
                _state = State.Arguments;
                return true;

            default:
                if (_streaming is null && _scanned == 0)
                {
                    string arguments = Pending.TrimStart();
                    if (arguments.Length == 0)
                        return false;
                    if (arguments[0] == '{')
                    {
                        Pending = arguments;
                        _streaming = new ArgumentStream(Open(_name));
                    }
                }

                if (_streaming is { } stream)
                {
                    Pending = Pending[stream.Read(Pending)..];
                    _streaming = stream.Closed ? null : stream;
                    if (!stream.Closed)
                        return false;
                    _state = State.Content;
                    return true;
                }

                for (; _scanned < Pending.Length; _scanned++)
                {
                    if (_nesting.Read(Pending[_scanned]) < 0 && _nesting.Depth == 0)
                    {
                        string json = Pending[..(_scanned + 1)];
                        if (!TryCall($"{{\"name\":{System.Text.Json.JsonSerializer.Serialize(_name)},\"arguments\":{json}}}", "arguments"))
                            Say(_marker + _name + ArgumentsMarker + json);
                        Pending = Pending[(_scanned + 1)..];
                        _state = State.Content;
                        return true;
                    }
                }

                return false;
        }
    }
}
