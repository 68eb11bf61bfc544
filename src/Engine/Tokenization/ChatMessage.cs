namespace Serving.Engine.Tokenization;

/// <summary>One chat turn; Role is system, user or assistant.</summary>
internal sealed record ChatMessage(string Role, string Content);
