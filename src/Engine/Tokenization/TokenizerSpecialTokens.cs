namespace Serving.Engine.Tokenization;

/// <summary>
/// BOS/EOS ids and whether encoding with special tokens adds them (from tokenizer_config.json and the post-processor),
/// and tokenizer_config.json's chat templates by name (a single template is "default").
/// </summary>
public sealed record TokenizerSpecialTokens(int? BosId, int? EosId, bool AddBos, bool AddEos, IReadOnlyDictionary<string, string> ChatTemplates,
    string? BosToken, string? EosToken);
