using System.Text.RegularExpressions;
using Serving.Server.Api.OpenAi.Tools;

namespace Serving.Server.Api.OpenAi.Reasoning;

/// <summary>
/// Reads gpt-oss's output in OpenAI's harmony format as it streams (<c>--reasoning-parser openai_gptoss</c>): a run of
/// messages after the prompt's <c>&lt;|start|&gt;assistant</c>, each a header, <c>&lt;|message|&gt;</c>, its body, and
/// <c>&lt;|end|&gt;</c> (<c>&lt;|call|&gt;</c> after a call, <c>&lt;|return|&gt;</c> after the answer; the next message
/// opens with <c>&lt;|start|&gt;assistant</c>):
/// <code>
/// &lt;|channel|&gt;analysis&lt;|message|&gt;Need the weather.&lt;|end|&gt;&lt;|start|&gt;assistant&lt;|channel|&gt;commentary to=functions.get_weather &lt;|constrain|&gt;json&lt;|message|&gt;{"city":"Paris"}&lt;|call|&gt;
/// &lt;|channel|&gt;analysis&lt;|message|&gt;…&lt;|end|&gt;&lt;|start|&gt;assistant&lt;|channel|&gt;final&lt;|message|&gt;It is sunny.&lt;|return|&gt;
/// </code>
/// The analysis channel's bodies are the reasoning; a message to <c>functions.NAME</c> (the recipient in the header, before
/// or after the channel) is a call of NAME whose body streams as its arguments, where the request lets the model call
/// (<paramref name="readsCalls"/>); a message to another recipient (gpt-oss's built-in browser or python tools, which
/// this server does not run), or to a function where the request gave none to call, is reasoning; the final and commentary channels' bodies are the content. A text that does not
/// open with a header — an output format held it from its first token — is all content. The decision rests on the text
/// alone (special tokens kept in it), so a stream and a whole response give the same message.
/// </summary>
internal sealed partial class HarmonyReader(ChatOutput output, bool readsCalls, Func<string> newId) : StreamedTextReader
{
    private const string Start = "<|start|>", Channel = "<|channel|>", Message = "<|message|>";
    private static readonly string[] BodyEnds = ["<|end|>", "<|call|>", "<|return|>", Start];

    private enum State { Lead, Header, Body, Plain }

    private enum Sink { Reasoning, Content, Call }

    private State _state = State.Lead;
    private Sink _sink;
    private ToolCall? _call;

    [GeneratedRegex(@"to=([^\s<]+)")]
    private static partial Regex Recipient();

    [GeneratedRegex(@"<\|channel\|>\s*([^\s<]+)")]
    private static partial Regex ChannelName();

    /// <inheritdoc/>
    /// <remarks>A header cut short at the end says nothing.</remarks>
    protected override void Drain(bool final)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Lead:
                    // Between messages (and before the first): whitespace, then a header, or else plain text.
                    string rest = Pending.TrimStart();
                    if (rest.Length == 0)
                    {
                        if (final)
                            Pending = "";                        // whitespace after the last message is not content
                        return;
                    }

                    if (rest.StartsWith(Start, StringComparison.Ordinal) || rest.StartsWith(Channel, StringComparison.Ordinal) || rest.StartsWith("to=", StringComparison.Ordinal))
                    {
                        Pending = rest.StartsWith(Start, StringComparison.Ordinal) ? rest[Start.Length..] : rest;
                        _state = State.Header;
                        continue;
                    }

                    if (!final && (Start.StartsWith(rest, StringComparison.Ordinal) || Channel.StartsWith(rest, StringComparison.Ordinal) || "to=".StartsWith(rest, StringComparison.Ordinal)))
                        return;
                    _state = State.Plain;
                    continue;

                case State.Plain:
                    output.Content.Append(Pending);
                    Pending = "";
                    return;

                case State.Header:
                    int at = Pending.IndexOf(Message, StringComparison.Ordinal);
                    if (at < 0)
                    {
                        if (final)
                            Pending = "";
                        return;
                    }

                    Open(Pending[..at]);
                    Pending = Pending[(at + Message.Length)..];
                    _state = State.Body;
                    continue;

                case State.Body:
                    var (end, marker) = FirstEnd(Pending);
                    if (end < 0)
                    {
                        int keep = final ? 0 : BodyEnds.Max(m => ToolCallReader.PartialMarker(Pending, m));
                        Say(Pending[..^keep]);
                        Pending = Pending[^keep..];
                        return;
                    }

                    Say(Pending[..end]);
                    Pending = Pending[(end + marker.Length)..];
                    _call = null;
                    _state = marker == Start ? State.Header : State.Lead;
                    continue;
            }
        }
    }

    /// <summary>Where the message with header <paramref name="header"/> goes.</summary>
    private void Open(string header)
    {
        string? recipient = Recipient().Match(header) is { Success: true } to ? to.Groups[1].Value : null;
        string channel = ChannelName().Match(header) is { Success: true } c ? c.Groups[1].Value : "";
        if (recipient is not null && recipient.StartsWith("functions.", StringComparison.Ordinal) && readsCalls && recipient.Length > "functions.".Length)
        {
            _sink = Sink.Call;
            _call = new ToolCall(newId(), recipient["functions.".Length..]);
            output.Calls.Add(_call);
        }
        else
            _sink = channel == "analysis" || recipient is not null ? Sink.Reasoning : Sink.Content;
    }

    private void Say(string text)
    {
        if (text.Length == 0)
            return;
        switch (_sink)
        {
            case Sink.Reasoning:
                output.Reasoning.Append(text);
                break;
            case Sink.Call:
                _call!.Arguments.Append(text);
                break;
            default:
                output.Content.Append(text);
                break;
        }
    }

    private static (int At, string Marker) FirstEnd(string text)
    {
        (int At, string Marker) first = (-1, "");
        foreach (string marker in BodyEnds)
        {
            int at = text.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0 && (first.At < 0 || at < first.At))
                first = (at, marker);
        }

        return first;
    }
}
