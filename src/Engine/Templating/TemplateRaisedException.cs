namespace Serving.Engine.Templating;

/// <summary>The template itself refused the conversation (<c>raise_exception("...")</c>): its message is for the client.</summary>
internal sealed class TemplateRaisedException(string message) : TemplateException(message);
