using Serving.Contracts.Generation;
using Serving.Runtime.Generation;

namespace Serving.Runtime.Tests.Generation;

public sealed class RequestOutputTests
{
    private static TokenEvent Token(int i, FinishReason finish = FinishReason.None, bool incomplete = false) =>
        new(new SampledToken(i, -0.25f * i, Enumerable.Range(0, i % 4).Select(k => (i * 10 + k, -1f - k)).ToArray()), i % 3 == 0 ? "" : $"t{i}é", finish)
        {
            OutputIncomplete = incomplete,
        };

    private static void AssertSame(TokenEvent expected, TokenEvent actual)
    {
        Assert.Equal(expected.Token.Id, actual.Token.Id);
        Assert.Equal(expected.Token.Logprob, actual.Token.Logprob);
        Assert.Equal(expected.Token.TopLogprobs, actual.Token.TopLogprobs);
        Assert.Equal(expected.TextDelta, actual.TextDelta);
        Assert.Equal(expected.Finish, actual.Finish);
        Assert.Equal(expected.OutputIncomplete, actual.OutputIncomplete);
    }

    private static List<TokenEvent> ReadTokens(RequestOutput output, int count)
    {
        var read = new List<TokenEvent>();
        while (read.Count < count && output.TryRead(out var update))
            if (update.Token is { } token)
                read.Add(token);
        return read;
    }

    [Fact]
    public async Task TryRead_AdmissionThenTokens_ReadBackInOrderWithEveryField()
    {
        var output = new RequestOutput();
        var written = Enumerable.Range(1, 7).Select(i => Token(i)).Append(Token(8, FinishReason.Stop, incomplete: true)).ToList();

        output.Admitted(cachedPromptTokens: 32);
        written.ForEach(output.Write);

        Assert.True(await output.WaitToReadAsync(CancellationToken.None));
        Assert.True(output.TryRead(out var first));
        Assert.Null(first.Token);
        Assert.Equal(32, first.CachedPromptTokens);
        var read = ReadTokens(output, int.MaxValue);
        Assert.Equal(written.Count, read.Count);
        for (int i = 0; i < written.Count; i++)
            AssertSame(written[i], read[i]);
        Assert.Equal(0, output.PendingTokens);
    }

    [Fact]
    public async Task WaitToReadAsync_CompletedWithError_ThrowsOnlyAfterThePendingTokens()
    {
        var output = new RequestOutput();
        output.Write(Token(1));
        output.Write(Token(2));
        output.Complete(new InvalidOperationException("row failed"));
        output.Write(Token(3));

        Assert.True(await output.WaitToReadAsync(CancellationToken.None));
        Assert.Equal([1, 2], ReadTokens(output, int.MaxValue).Select(t => t.Token.Id));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => output.WaitToReadAsync(CancellationToken.None).AsTask());
        Assert.Equal("row failed", ex.Message);
    }

    [Fact]
    public async Task WaitToReadAsync_CleanEnd_FalseAndLaterCompletionIgnored()
    {
        var output = new RequestOutput();
        output.Write(Token(1));
        output.Complete();
        output.Complete(new InvalidOperationException("too late"));

        Assert.Single(ReadTokens(output, int.MaxValue));
        Assert.False(await output.WaitToReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task WaitToReadAsync_Cancelled_ThrowsOperationCanceled()
    {
        var output = new RequestOutput();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => output.WaitToReadAsync(cancel.Token).AsTask());
        output.Write(Token(1));
        Assert.True(await output.WaitToReadAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Write_ReaderWaiting_ReaderResumesOffTheWritersThread()
    {
        var output = new RequestOutput();
        int readerThread = 0;
        var reader = Task.Run(async () =>
        {
            await output.WaitToReadAsync(CancellationToken.None);
            readerThread = Environment.CurrentManagedThreadId;
            // Were the reader resumed inline, the writer would be held here (an engine loop waiting on a socket write).
            Thread.Sleep(200);
        });
        await Task.Delay(100);

        int writerThread = 0;
        var writerTime = System.Diagnostics.Stopwatch.StartNew();
        var writer = new Thread(() =>
        {
            writerThread = Environment.CurrentManagedThreadId;
            output.Write(Token(1));
            writerTime.Stop();
        });
        writer.Start();
        writer.Join();
        await reader;

        Assert.NotEqual(writerThread, readerThread);
        Assert.True(writerTime.ElapsedMilliseconds < 150, $"the write took {writerTime.ElapsedMilliseconds} ms: the reader ran on the writer's thread");
    }

    [Fact]
    public void TryRead_ReaderNeverEmptiesTheOutput_ReadTokensDroppedAndOrderKept()
    {
        var output = new RequestOutput();
        int next = 0, expected = 0;
        for (int round = 0; round < 6; round++)
        {
            for (int i = 0; i < 1500; i++)
                output.Write(Token(next++));
            foreach (var token in ReadTokens(output, 1400))
                AssertSame(Token(expected++), token);
        }

        Assert.Equal(next - expected, output.PendingTokens);
        foreach (var token in ReadTokens(output, int.MaxValue))
            AssertSame(Token(expected++), token);
        Assert.Equal(next, expected);
    }
}
