namespace Serving.Engine.Tokenization;

/// <summary>The BPE model's options from tokenizer.json (<c>dropout</c> is training-only and ignored).</summary>
/// <param name="UnknownId">The <c>unk_token</c>'s id, if any.</param>
/// <param name="ByteFallback">A character outside the vocabulary becomes its UTF-8 bytes as <c>&lt;0xXX&gt;</c> tokens.</param>
/// <param name="FuseUnknown">Consecutive unknown characters become one <c>unk_token</c>.</param>
/// <param name="IgnoreMerges">A pre-token that is itself in the vocabulary is one token, even where merges cannot reach it.</param>
public sealed record BpeOptions(int? UnknownId, bool ByteFallback, bool FuseUnknown, bool IgnoreMerges);
