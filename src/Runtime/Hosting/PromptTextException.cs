namespace Serving.Runtime.Hosting;

/// <summary>The model's tokenizer or chat template refused a prompt; the message says why and is safe to show the caller.</summary>
public sealed class PromptTextException(string message, Exception inner) : Exception(message, inner);
