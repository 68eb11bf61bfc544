using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// One message from the engine worker to a waiting request: a token, or the notice that it was admitted to the batch
/// (<see cref="Token"/> null; marks the end of its queue time for traces). Errors end the channel instead.
/// </summary>
internal sealed record GenerationUpdate(TokenEvent? Token)
{
    public static readonly GenerationUpdate Admitted = new((TokenEvent?)null);
}
