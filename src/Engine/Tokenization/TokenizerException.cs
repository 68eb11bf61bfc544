namespace Serving.Engine.Tokenization;

/// <summary>A tokenizer.json (or tokenizer_config.json) the engine cannot use; the message names the file and field.</summary>
public sealed class TokenizerException(string message) : Exception(message);
