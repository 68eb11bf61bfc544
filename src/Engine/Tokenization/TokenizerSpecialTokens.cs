namespace Serving.Engine.Tokenization;

/// <summary>BOS/EOS ids and whether encoding with special tokens adds them (from tokenizer_config.json and the post-processor).</summary>
internal sealed record TokenizerSpecialTokens(int? BosId, int? EosId, bool AddBos, bool AddEos, string? ChatTemplate, string? BosToken, string? EosToken);
