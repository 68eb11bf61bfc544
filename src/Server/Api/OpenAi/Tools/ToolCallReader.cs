using System.Text.Json;
using System.Text.RegularExpressions;


namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Reads a chat choice's text as it streams, in one model family's tool-call syntax, and settles it into
/// <see cref="Output"/>: text for the user, and each call once it is complete. Streaming and whole responses read
/// through the same reader (<see cref="Push"/> per delta, then <see cref="Finish"/>), so both give the same message; a
/// syntax is its <see cref="Drain"/>.
/// </summary>
/// <remarks>
/// Whitespace that only separates text from a call (a newline before <c>&lt;tool_call&gt;</c>, between calls, after the
/// last) is not content; a whitespace run at the end of the text is therefore held until what follows it shows which it
/// is. A call whose JSON does not parse stays in the content as the model wrote it.
/// </remarks>
internal abstract class ToolCallReader(ChatOutput output, Func<string> newId)
{
    private string _heldSpace = "";
    private bool _afterCall;

    public ChatOutput Output { get; } = output;

    /// <summary>Text read but not settled yet: a marker's possible first characters, an open call.</summary>
    protected string Pending { get; set; } = "";

    /// <summary>Reads the next piece of the choice's text.</summary>
    public void Push(string delta)
    {
        Pending += delta;
        Drain(final: false);
    }

    /// <summary>The text has ended: settles whatever is still held.</summary>
    public void Finish()
    {
        Drain(final: true);
        EndOfText();
    }

    /// <summary>Settles what <see cref="Pending"/> allows; <paramref name="final"/>: all of it, the text having ended.</summary>
    protected abstract void Drain(bool final);

    /// <summary>
    /// Says <see cref="Pending"/> up to the first <paramref name="marker"/> and returns true, Pending then what follows it;
    /// without one returns false, holding back an end that could begin it (unless <paramref name="final"/>).
    /// </summary>
    protected bool SayUntil(string marker, bool final)
    {
        int at = Pending.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0)
        {
            int keep = final ? 0 : PartialMarker(Pending, marker);
            Say(Pending[..^keep]);
            Pending = Pending[^keep..];
            return false;
        }

        Say(Pending[..at]);
        Pending = Pending[(at + marker.Length)..];
        return true;
    }

    /// <summary>Text for the user.</summary>
    protected void Say(string text)
    {
        if (_afterCall)
        {
            text = text.TrimStart();
            if (text.Length == 0)
                return;
            _afterCall = false;
        }

        int end = text.Length;
        while (end > 0 && char.IsWhiteSpace(text[end - 1]))
            end--;
        if (end == 0)
        {
            _heldSpace += text;
            return;
        }

        Output.Content.Append(_heldSpace).Append(text, 0, end);
        _heldSpace = text[end..];
    }

    /// <summary>A complete call.</summary>
    protected void Call(string name, string arguments) => Open(name).Arguments.Append(arguments);

    /// <summary>A call whose arguments follow as they are read (appended to the returned call's <see cref="ToolCall.Arguments"/>).</summary>
    protected ToolCall Open(string name)
    {
        _heldSpace = "";
        _afterCall = true;
        var call = new ToolCall(newId(), name);
        Output.Calls.Add(call);
        return call;
    }

    /// <summary>
    /// When <see cref="Pending"/> starts as <paramref name="start"/> matches — a call's name (group 1: a JSON string, or the
    /// name itself when not <paramref name="nameIsJson"/>)
    /// and the key of its arguments up to their opening brace, the match's last character — opens the call and returns its
    /// arguments' stream, <see cref="Pending"/> then from that brace; else null. The decision rests on the text alone, so a
    /// stream and a whole response take it alike.
    /// </summary>
    protected ArgumentStream? StartStreaming(Regex start, bool nameIsJson = true)
    {
        if (start.Match(Pending) is not { Success: true } match)
            return null;
        string? name;
        try
        {
            name = nameIsJson ? JsonSerializer.Deserialize<string>(match.Groups[1].Value) : match.Groups[1].Value.Trim();
        }
        catch (JsonException)
        {
            return null;
        }

        if (string.IsNullOrEmpty(name))
            return null;
        var stream = new ArgumentStream(Open(name));
        Pending = Pending[(match.Length - 1)..];
        return stream;
    }

    /// <summary>
    /// After a streamed call's arguments, skips the call's own closing up to <paramref name="endMarker"/>, found at
    /// <paramref name="end"/> in <see cref="Pending"/> (−1: not yet). Returns whether the call is over — its marker read,
    /// or the text ended — and whether reading goes on after it (only past a marker).
    /// </summary>
    protected (bool Over, bool ReadOn) SkipCallClosing(bool argumentsClosed, string endMarker, int end, bool final)
    {
        if (end < 0 && !final)
        {
            if (argumentsClosed)
                Pending = Pending[^PartialMarker(Pending, endMarker)..];   // the call's closing brace, fence and space: not content
            return (false, false);
        }

        Pending = end < 0 ? "" : Pending[(end + endMarker.Length)..];
        return (true, end >= 0);
    }

    /// <summary>End of text: held whitespace is content unless a call was made.</summary>
    protected void EndOfText()
    {
        if (Output.Calls.Count == 0)
            Output.Content.Append(_heldSpace);
        _heldSpace = "";
    }

    /// <summary>
    /// Adds the call <paramref name="json"/> describes — an object with a string <c>name</c> and the arguments under the
    /// first of <paramref name="argumentKeys"/> present (none: no arguments) — and returns true; false when it is not one.
    /// Arguments written as a JSON string are taken as the JSON text it holds, as some models write them.
    /// </summary>
    protected bool TryCall(string json, params ReadOnlySpan<string> argumentKeys)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                return false;
            string arguments = "{}";
            foreach (string key in argumentKeys)
            {
                if (root.TryGetProperty(key, out var value))
                {
                    arguments = value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();
                    break;
                }
            }

            Call(name.GetString()!, arguments);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// How many characters at the end of <paramref name="text"/> could be the start of <paramref name="marker"/>: what a reader
    /// of streamed text holds back (the tool-call readers, the reasoning readers).
    /// </summary>
    protected internal static int PartialMarker(string text, string marker)
    {
        for (int n = Math.Min(marker.Length - 1, text.Length); n > 0; n--)
            if (text.AsSpan(text.Length - n).SequenceEqual(marker.AsSpan(0, n)))
                return n;
        return 0;
    }
}
