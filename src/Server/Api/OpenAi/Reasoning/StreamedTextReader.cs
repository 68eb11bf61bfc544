namespace Serving.Server.Api.OpenAi.Reasoning;

/// <summary>
/// A reader of a model's text as it streams: each delta joins the text it could not place yet (<see cref="Pending"/>, a
/// marker cut short, say), and <see cref="Drain"/> places what it can — all of it once the text has ended. Fed a text in any
/// pieces it places the same text the same way, so a stream and a whole response give the same message.
/// </summary>
internal abstract class StreamedTextReader
{
    /// <summary>The text read and not placed yet.</summary>
    protected string Pending { get; set; } = "";

    public virtual void Push(string delta)
    {
        Pending += delta;
        Drain(final: false);
    }

    /// <summary>The text has ended: what is held goes where it was heading.</summary>
    public void Finish() => Drain(final: true);

    /// <summary>Places what <see cref="Pending"/> decides; with <paramref name="final"/> the text has ended and nothing stays held.</summary>
    protected abstract void Drain(bool final);
}
