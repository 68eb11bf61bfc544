using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// One message from the engine worker to a waiting request: a token, or the notice that it was admitted to the batch
/// (<see cref="Token"/> null; marks the end of its queue time for traces) with the prompt tokens the prefix cache gave it.
/// Errors end the channel instead.
/// </summary>
internal sealed record GenerationUpdate(TokenEvent? Token, int CachedPromptTokens = 0)
{
    public static GenerationUpdate Admitted(int cachedPromptTokens) => new(null, cachedPromptTokens);
}
