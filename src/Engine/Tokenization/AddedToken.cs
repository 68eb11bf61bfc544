namespace Serving.Engine.Tokenization;

/// <summary>
/// An entry of tokenizer.json's <c>added_tokens</c>: matched in input text before the normalizer and BPE run.
/// <paramref name="Lstrip"/> / <paramref name="Rstrip"/>: whitespace on that side is taken into the match;
/// <paramref name="SingleWord"/>: matches only where it is not part of a longer word.
/// </summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool Lstrip = false, bool Rstrip = false, bool SingleWord = false);
