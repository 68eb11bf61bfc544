namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// A streaming call's arguments object, read as the model writes it: each piece of text up to the object's matching
/// brace is appended to the call, so its arguments reach the client delta by delta (strings and their escapes skipped,
/// as <see cref="JsonNesting"/> reads them).
/// </summary>
internal struct ArgumentStream(ToolCall call)
{
    private JsonNesting _nesting;

    public ToolCall Call { get; } = call;

    /// <summary>The object's closing brace has been read.</summary>
    public bool Closed { get; private set; }

    /// <summary>Appends what of <paramref name="text"/> belongs to the arguments; returns how many characters that was.</summary>
    public int Read(string text)
    {
        int i = 0;
        while (i < text.Length && !Closed)
        {
            _nesting.Read(text[i++]);
            Closed = _nesting.Depth == 0;
        }

        Call.Arguments.Append(text, 0, i);
        return i;
    }
}
