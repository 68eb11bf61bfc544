using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// DeepSeek-V3's and R1's tool calls (vLLM's <c>deepseek_v3</c> and <c>deepseek_v31</c> parsers): text, then a block
/// <c>&lt;｜tool▁calls▁begin｜&gt;</c> … <c>&lt;｜tool▁calls▁end｜&gt;</c> of calls, each
/// <c>&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\nARGS\n```&lt;｜tool▁call▁end｜&gt;</c> (V3, R1) or
/// <c>&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;ARGS&lt;｜tool▁call▁end｜&gt;</c> (V3.1 and later). The markers are special
/// tokens, so the text keeps special tokens (<see cref="ToolCallParsers.ShowsSpecialTokens"/>). A call whose arguments
/// start with <c>{</c> is known once they start: they stream as they are written, as vLLM's parser streams them, up to the
/// object's matching brace or the call's end marker; what follows up to the marker (V3's closing fence) is the call's own.
/// Any other call is read whole at its end marker: a call if its arguments are JSON, else content as written.
/// </summary>
internal sealed partial class DeepSeekToolCallReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private const string BlockStart = "<｜tool▁calls▁begin｜>";
    private const string BlockEnd = "<｜tool▁calls▁end｜>";
    private const string CallStart = "<｜tool▁call▁begin｜>";
    private const string CallEnd = "<｜tool▁call▁end｜>";
    private const string Separator = "<｜tool▁sep｜>";
    private const string JsonFence = "\n```json\n";

    private bool _inBlock;

    /// <summary>The call whose arguments are streaming.</summary>
    private ArgumentStream? _streaming;

    /// <summary>V3.1: <c>NAME&lt;｜tool▁sep｜&gt;{</c>.</summary>
    [GeneratedRegex(@"^\s*<｜tool▁call▁begin｜>([^<\n]+)<｜tool▁sep｜>\s*\{")]
    private static partial Regex NamedStart();

    /// <summary>V3 and R1: <c>function&lt;｜tool▁sep｜&gt;NAME\n```json\n{</c>.</summary>
    [GeneratedRegex(@"^\s*<｜tool▁call▁begin｜>function<｜tool▁sep｜>([^<\n]+)\n```json\n\s*\{")]
    private static partial Regex FencedStart();

    protected override void Drain(bool final)
    {
        while (true)
        {
            if (!_inBlock)
            {
                if (!SayUntil(BlockStart, final))
                    return;
                _inBlock = true;
                continue;
            }

            if (_streaming is not null || (_streaming = StartStreaming(NamedStart(), nameIsJson: false) ?? StartStreaming(FencedStart(), nameIsJson: false)) is not null)
            {
                if (!StreamArguments(final))
                    return;
                continue;
            }

            string rest = Pending.TrimStart();
            if (rest.StartsWith(BlockEnd, StringComparison.Ordinal))
            {
                Pending = rest[BlockEnd.Length..];
                _inBlock = false;
                continue;
            }

            int end = rest.StartsWith(CallStart, StringComparison.Ordinal) ? rest.IndexOf(CallEnd, CallStart.Length, StringComparison.Ordinal) : -2;
            if (end == -2 && (final || !(CallStart.StartsWith(rest, StringComparison.Ordinal) || BlockEnd.StartsWith(rest, StringComparison.Ordinal))))
            {
                // Neither a call nor the block's end: the block is over, what follows is text.
                _inBlock = false;
                continue;
            }

            if (end < 0)
            {
                if (final)
                {
                    Say(BlockStart + Pending);                 // a call cut short stays in the content as written
                    Pending = "";
                }

                return;
            }

            string body = rest[CallStart.Length..end];
            if (!TryCall(body))
                Say(CallStart + body + CallEnd);
            Pending = rest[(end + CallEnd.Length)..];
        }
    }

    /// <summary>
    /// Appends the streaming call's arguments read so far — never past the call's end marker, nor the end of the text
    /// that could begin it — then skips the call's closing up to the marker. True when the call is done and reading goes
    /// on after it; false when more text is needed (or the text ended: the call keeps what was written).
    /// </summary>
    private bool StreamArguments(bool final)
    {
        var stream = _streaming!.Value;
        int end = Pending.IndexOf(CallEnd, StringComparison.Ordinal);
        if (!stream.Closed)
        {
            int readable = end >= 0 ? end : final ? Pending.Length : Pending.Length - PartialMarker(Pending, CallEnd);
            int read = stream.Read(Pending[..readable]);
            Pending = Pending[read..];
            end = end >= 0 ? end - read : -1;
        }

        _streaming = stream;
        var (over, readOn) = SkipCallClosing(stream.Closed, CallEnd, end, final);
        if (over)
            _streaming = null;
        return readOn;
    }

    /// <summary>Reads one call's body in either form; false when it is neither.</summary>
    private bool TryCall(string body)
    {
        int separator = body.IndexOf(Separator, StringComparison.Ordinal);
        if (separator < 0)
            return false;
        string left = body[..separator], right = body[(separator + Separator.Length)..];
        string name, arguments;
        int fence = right.IndexOf(JsonFence, StringComparison.Ordinal);
        if (fence >= 0 && right.TrimEnd().EndsWith("```", StringComparison.Ordinal))
        {
            name = right[..fence].Trim();
            string fenced = right.TrimEnd();
            arguments = fenced[(fence + JsonFence.Length)..^3].Trim();
        }
        else
        {
            name = left.Trim();
            arguments = right.Trim();
        }

        if (name.Length == 0 || !IsJson(arguments))
            return false;
        Call(name, arguments);
        return true;
    }

    private static bool IsJson(string text)
    {
        try
        {
            using var _ = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
