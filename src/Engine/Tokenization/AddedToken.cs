namespace Serving.Engine.Tokenization;

/// <summary>An entry of tokenizer.json's <c>added_tokens</c>: matched verbatim in input text before BPE runs.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special);
