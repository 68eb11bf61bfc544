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

    private bool _inCall;

    /// <summary>Where in <see cref="ToolCallReader.Pending"/> the end marker may still start (the open call's text before it was searched).</summary>
    private int _searchFrom;

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
}
