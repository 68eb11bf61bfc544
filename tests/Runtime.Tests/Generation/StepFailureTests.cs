using Microsoft.Extensions.Logging;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Runtime.Tests.Support;
using Serving.Tests.Shared;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Tests.Generation;

/// <summary>
/// A forward step that throws, through the real runtime and engine: a row whose forward pass fails (here a prompt token
/// outside the vocabulary, which only the HTTP and gRPC validation would have refused) joins a batch of running streams.
/// Only that request fails; the others keep every token they would have had alone.
/// </summary>
public sealed class StepFailureTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Create("step-failure");
    private readonly CapturedLogs _logs = new();
    private RuntimeHost _runtime = null!;

    public async Task InitializeAsync()
    {
        _runtime = await RuntimeHost.StartSyntheticAsync(_root, 23, _logs, ("Serving:Model:MaxSequences", "8"), ("Serving:Model:MaxContext", "320"));
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private const int StreamTokens = 280;

    private static SamplingParams Greedy(int tokens) => new() { Temperature = 0, MaxTokens = tokens, IgnoreEos = true };

    private static int[] Prompt(int i) => [.. Enumerable.Range(0, 5 + i).Select(k => 3 + (i * 11 + k * 7) % 200)];

    [Fact]
    public async Task RunStep_OneRowFailsInABatch_OnlyThatRequestFailsOthersMatchTheirRunAlone()
    {
        var client = _runtime.Get<GenerationClient>();
        int vocab = _runtime.Get<ModelHost>().Model.Config.VocabSize;
        var alone = new List<int[]>();
        for (int i = 0; i < 6; i++)
            alone.Add(await Tokens(client, Prompt(i), Greedy(StreamTokens), CancellationToken.None));

        // The six streams run first; the bad request joins their decode steps once each has produced a token. The
        // streams are long enough that they are still decoding when it arrives, even on a loaded two-core machine.
        var started = Enumerable.Range(0, 6).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var together = Enumerable.Range(0, 6).Select(i => Tokens(client, Prompt(i), Greedy(StreamTokens), CancellationToken.None, started[i])).ToArray();
        await Task.WhenAll(started.Select(s => s.Task)).WaitAsync(TimeSpan.FromSeconds(60));
        var bad = await Assert.ThrowsAsync<RequestFailedException>(() => Tokens(client, [5, vocab + 3, 7], Greedy(4), CancellationToken.None));
        var results = await Task.WhenAll(together);

        Assert.Equal(RequestFailure.Invalid, bad.Failure);
        Assert.Contains($"token id {vocab + 3}", bad.Message, StringComparison.Ordinal);
        for (int i = 0; i < 6; i++)
            Assert.Equal(alone[i], results[i]);
        var warnings = _logs.AtLeast(LogLevel.Warning);
        Assert.Contains(warnings, e => e.Level == LogLevel.Warning && e.Message.StartsWith("Forward step of", StringComparison.Ordinal)
            && e.Message.EndsWith("rows failed; running each row alone", StringComparison.Ordinal));
        Assert.Single(warnings, e => e.Level == LogLevel.Error);
        var worker = _runtime.Get<EngineWorker>();
        Assert.True(SpinWait.SpinUntil(() => worker.UsedKvBlocks == 0 && worker.TrackedRequests == 0 && worker.Running == 0, 5000));
    }

    private static async Task<int[]> Tokens(GenerationClient client, int[] prompt, SamplingParams sampling, CancellationToken ct, TaskCompletionSource? first = null)
    {
        var tokens = new List<int>();
        await foreach (var e in client.SubmitAsync(new GenerationRequest(prompt, sampling, PinnedAdapters.None), ct))
        {
            tokens.Add(e.Token.Id);
            first?.TrySetResult();
        }

        return [.. tokens];
    }
}
