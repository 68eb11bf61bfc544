namespace Serving.Engine.Tokenization;

/// <summary>One chat turn; Role is system, user or assistant.</summary>
public sealed record ChatMessage(string Role, string Content);
