namespace Serving.Engine.Tokenization;

/// <summary>What a tokenizer's decoder does with the space SentencePiece-style encoding prepends to the text.</summary>
public enum DecodedLeadingSpace
{
    /// <summary>Kept (byte-level decoders; a <c>Replace</c>/<c>ByteFallback</c>/<c>Fuse</c> sequence without <c>Strip</c>).</summary>
    Kept,

    /// <summary>
    /// <c>Strip(' ', 1, 0)</c> after <c>Fuse</c>: one leading space of the whole decoded text is removed, whichever token
    /// it came from (a lone "▁" token first takes its own space, and the next token keeps its).
    /// </summary>
    StrippedFromText,

    /// <summary>A <c>Metaspace</c> decoder that prepends: the first token of the list (special ones included when shown) loses its leading space.</summary>
    StrippedFromFirstToken,
}
