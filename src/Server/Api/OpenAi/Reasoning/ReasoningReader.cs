using System.Text;

namespace Serving.Server.Api.OpenAi.Reasoning;

/// <summary>
/// Splits a reasoning model's text, as it streams, into its reasoning — between <c>&lt;think&gt;</c> and
/// <c>&lt;/think&gt;</c> — and the answer after it, which goes on to <paramref name="content"/> (the tool-call reader, or
/// the message's content). A <c>&lt;think&gt;</c> that opens the text is dropped; a text that
/// <paramref name="startsInReasoning"/> (the template opened the block in the prompt, as DeepSeek-R1's and newer Qwen3
/// templates do) is reasoning until <c>&lt;/think&gt;</c>, all of it if that never comes (the answer was cut short).
/// Whitespace between <c>&lt;/think&gt;</c> and the answer is the template's, not the answer's.
/// </summary>
internal sealed class ReasoningReader(StringBuilder reasoning, Action<string> content, bool startsInReasoning) : StreamedTextReader
{
    private const string Start = "<think>";
    private const string End = "</think>";

    private enum State { Lead, Reasoning, AnswerLead, Answer }

    private State _state = State.Lead;

    /// <summary>Once in the answer, each delta goes straight on.</summary>
    public override void Push(string delta)
    {
        if (_state == State.Answer)
            content(delta);
        else
            base.Push(delta);
    }

    /// <inheritdoc/>
    protected override void Drain(bool final)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Lead:
                    string rest = Pending.TrimStart();
                    if (rest.StartsWith(Start, StringComparison.Ordinal))
                    {
                        Pending = rest[Start.Length..];
                        _state = State.Reasoning;
                        continue;
                    }

                    if (!final && (rest.Length == 0 || Start.StartsWith(rest, StringComparison.Ordinal)))
                        return;                                      // could still open with the tag
                    _state = startsInReasoning ? State.Reasoning : State.Answer;
                    continue;

                case State.Reasoning:
                    int end = Pending.IndexOf(End, StringComparison.Ordinal);
                    if (end < 0)
                    {
                        int keep = final ? 0 : Tools.ToolCallReader.PartialMarker(Pending, End);
                        reasoning.Append(Pending, 0, Pending.Length - keep);
                        Pending = Pending[^keep..];
                        return;
                    }

                    reasoning.Append(Pending, 0, end);
                    Pending = Pending[(end + End.Length)..];
                    _state = State.AnswerLead;
                    continue;

                case State.AnswerLead:
                    Pending = Pending.TrimStart();
                    if (Pending.Length == 0 && !final)
                        return;
                    _state = State.Answer;
                    continue;

                default:
                    if (Pending.Length > 0)
                        content(Pending);
                    Pending = "";
                    return;
            }
        }
    }
}
