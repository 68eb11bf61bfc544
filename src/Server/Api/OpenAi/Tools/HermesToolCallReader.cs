namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Hermes' syntax (Hermes 2/3, Qwen 2.5/3, and the many templates that copied it; vLLM's <c>hermes</c> parser): each call
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>, text around them for the user. A call
/// left open when the text ends is read if its JSON is whole, as vLLM does.
/// </summary>
internal sealed class HermesToolCallReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private const string Start = "<tool_call>";
    private const string End = "</tool_call>";

    /// <summary>Text not yet settled: a possible start marker's first characters, or the open call's body so far.</summary>
    private string _pending = "";

    private bool _inCall;

    /// <summary>Where in <see cref="_pending"/> the end marker may still start (the open call's text before it was searched).</summary>
    private int _searchFrom;

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
            if (!_inCall)
            {
                int at = _pending.IndexOf(Start, StringComparison.Ordinal);
                if (at < 0)
                {
                    int keep = final ? 0 : PartialMarker(_pending, Start);
                    Say(_pending[..^keep]);
                    _pending = _pending[^keep..];
                    return;
                }

                Say(_pending[..at]);
                _pending = _pending[(at + Start.Length)..];
                _inCall = true;
                _searchFrom = 0;
                continue;
            }

            int end = _pending.IndexOf(End, _searchFrom, StringComparison.Ordinal);
            if (end < 0 && !final)
            {
                _searchFrom = Math.Max(0, _pending.Length - End.Length + 1);
                return;
            }

            string body = end < 0 ? _pending : _pending[..end];
            if (!TryCall(body.Trim(), "arguments"))
                Say(Start + body + (end < 0 ? "" : End));
            _pending = end < 0 ? "" : _pending[(end + End.Length)..];
            _inCall = false;
            if (end < 0)
                return;
        }
    }
}
