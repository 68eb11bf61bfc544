using System.Text.RegularExpressions;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Hermes' syntax (Hermes 2/3, Qwen 2.5/3, and the many templates that copied it; vLLM's <c>hermes</c> parser): each call
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>, text around them for the user. A call
/// that starts <c>{"name": "f", "arguments": {</c> (the order these models write) is a call from there on: its arguments
/// stream as they are written, as vLLM's parser streams them, up to the object's matching brace; whatever follows it up
/// to <c>&lt;/tool_call&gt;</c> is the call's own closing. Any other call is read whole at <c>&lt;/tool_call&gt;</c> (or
/// the end of the text): a call if its JSON is one, else content as written. The decision rests only on the text, so a
/// stream and a whole response give the same message.
/// </summary>
internal sealed partial class HermesToolCallReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private const string Start = "<tool_call>";
    private const string End = "</tool_call>";

    private bool _inCall;

    /// <summary>Where in <see cref="ToolCallReader.Pending"/> the end marker may still start (the open call's text before it was searched).</summary>
    private int _searchFrom;

    /// <summary>The call whose arguments are streaming.</summary>
    private ArgumentStream? _streaming;

    [GeneratedRegex("""^\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*\{""")]
    private static partial Regex StreamingStart();

    protected override void Drain(bool final)
    {
        while (true)
        {
            if (!_inCall)
            {
                if (!SayUntil(Start, final))
                    return;
                _inCall = true;
                _searchFrom = 0;
                continue;
            }

            _streaming ??= StartStreaming(StreamingStart());
            if (_streaming is not null)
            {
                if (!StreamArguments(final))
                    return;
                continue;
            }

            int end = Pending.IndexOf(End, _searchFrom, StringComparison.Ordinal);
            if (end < 0 && !final)
            {
                _searchFrom = Math.Max(0, Pending.Length - End.Length + 1);
                return;
            }

            string body = end < 0 ? Pending : Pending[..end];
            if (!TryCall(body.Trim(), "arguments"))
                Say(Start + body + (end < 0 ? "" : End));
            Pending = end < 0 ? "" : Pending[(end + End.Length)..];
            _inCall = false;
            if (end < 0)
                return;
        }
    }

    /// <summary>
    /// Appends the streaming call's arguments read so far, then skips its closing up to the end marker. True when the
    /// call is done and reading goes on after it; false when more text is needed (or the text ended).
    /// </summary>
    private bool StreamArguments(bool final)
    {
        var stream = _streaming!.Value;
        if (!stream.Closed)
            Pending = Pending[stream.Read(Pending)..];
        _streaming = stream;
        var (over, readOn) = SkipCallClosing(stream.Closed, End, stream.Closed ? Pending.IndexOf(End, StringComparison.Ordinal) : -1, final);
        if (over)
            (_inCall, _streaming) = (false, null);
        return readOn;
    }
}
