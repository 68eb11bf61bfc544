namespace Serving.Engine.Templating;

/// <summary>
/// A chat template that cannot be parsed (an unsupported construct: a start-up error naming it) or that failed while
/// rendering (a bad value, <c>raise_exception</c>: a 400 at chat time).
/// </summary>
internal class TemplateException(string message) : Exception(message);
