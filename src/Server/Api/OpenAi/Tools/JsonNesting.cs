namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// How deep a JSON text is in objects and lists, one character at a time, strings and their escapes skipped: enough to
/// see where a streamed JSON value ends without parsing it. Malformed text is the parser's to refuse afterwards.
/// </summary>
internal struct JsonNesting
{
    private bool _inString;
    private bool _escaped;

    public int Depth { get; private set; }

    /// <summary>Reads <paramref name="c"/>; returns +1 when it opened an object or list, −1 when it closed one, else 0.</summary>
    public int Read(char c)
    {
        if (_inString)
        {
            if (_escaped)
                _escaped = false;
            else if (c == '\\')
                _escaped = true;
            else if (c == '"')
                _inString = false;
            return 0;
        }

        switch (c)
        {
            case '"':
                _inString = true;
                return 0;
            case '{' or '[':
                Depth++;
                return 1;
            case '}' or ']':
                Depth--;
                return -1;
            default:
                return 0;
        }
    }
}
