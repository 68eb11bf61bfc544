namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Pythonic tool calls (vLLM's <c>pythonic</c> parser: Llama 3.2 with its pythonic template, Llama 4): a text that is a
/// Python list of calls, <c>[get_weather(city="Paris"), now()]</c>, optionally between Llama 4's
/// <c>&lt;|python_start|&gt;</c> and <c>&lt;|python_end|&gt;</c>, is read into calls (<see cref="PythonLiteralCalls"/>);
/// text after the list is content; any other text is all content, and so is a list that is not one of calls.
/// </summary>
internal sealed class PythonicToolCallReader(ChatOutput output, Func<string> newId) : ToolCallReader(output, newId)
{
    private const string Start = "<|python_start|>";
    private const string End = "<|python_end|>";

    private enum State { Lead, List, AfterList, Content }

    private State _state = State.Lead;
    private int _scanned;
    private int _depth;
    private char _quote;
    private bool _escaped;

    protected override void Drain(bool final)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Lead:
                    string rest = Pending.TrimStart();
                    if (rest.StartsWith(Start, StringComparison.Ordinal))
                        rest = rest[Start.Length..].TrimStart();
                    if (rest.Length == 0 || (Start.StartsWith(rest, StringComparison.Ordinal) && rest.Length < Start.Length))
                    {
                        if (!final)
                            return;
                        _state = State.Content;
                        continue;
                    }

                    if (rest[0] == '[')
                    {
                        Pending = rest;
                        _scanned = 0;
                        _state = State.List;
                    }
                    else
                        _state = State.Content;
                    continue;

                case State.List:
                    if (!Scan())
                    {
                        if (final)
                            _state = State.Content;              // a list cut short stays in the content
                        else
                            return;
                        continue;
                    }

                    string list = Pending[.._scanned];
                    var calls = PythonLiteralCalls.Read(list);
                    if (calls is null)
                    {
                        _state = State.Content;                  // a list, but not of calls: all content
                        continue;
                    }

                    foreach (var (name, arguments) in calls)
                        Call(name, arguments);
                    Pending = Pending[_scanned..];
                    _state = State.AfterList;
                    continue;

                case State.AfterList:
                    string after = Pending.TrimStart();
                    if (!final && after.Length < End.Length && End.StartsWith(after, StringComparison.Ordinal))
                        return;
                    Pending = after.StartsWith(End, StringComparison.Ordinal) ? after[End.Length..] : Pending;
                    _state = State.Content;
                    continue;

                default:
                    Say(Pending);
                    Pending = "";
                    return;
            }
        }
    }

    /// <summary>Advances over the list's text, Python strings skipped; true once its closing bracket is read.</summary>
    private bool Scan()
    {
        for (; _scanned < Pending.Length; _scanned++)
        {
            char c = Pending[_scanned];
            if (_quote != '\0')
            {
                if (_escaped)
                    _escaped = false;
                else if (c == '\\')
                    _escaped = true;
                else if (c == _quote)
                    _quote = '\0';
                continue;
            }

            if (c is '"' or '\'')
                _quote = c;
            else if (c is '[' or '(' or '{')
                _depth++;
            else if (c is ']' or ')' or '}' && --_depth == 0)
            {
                _scanned++;
                return true;
            }
        }

        return false;
    }
}
