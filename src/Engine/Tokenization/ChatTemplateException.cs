namespace Serving.Engine.Tokenization;

/// <summary>The model has no chat template the server can render, or the messages do not fit it.</summary>
public sealed class ChatTemplateException(string message) : Exception(message);
