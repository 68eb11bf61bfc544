using System.Threading.Channels;
using Serving.Engine.Sampling;

namespace Serving.Server.Generation;

/// <summary>A request handed to the <see cref="EngineWorker"/>: what to generate and where to send each token.</summary>
internal sealed record GenerationCommand(
    IReadOnlyList<int> PromptTokens,
    SamplingParams Sampling,
    ChannelWriter<GenerationUpdate> Output,
    CancellationToken Aborted);
