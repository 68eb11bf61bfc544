using Serving.AdapterStore.Files;

namespace Serving.AdapterStore.Tests.Files;

public sealed class AdapterFileBuffersTests
{
    [Fact]
    public void Return_UsedBytes_ClearedBeforeTheBufferIsReused()
    {
        byte[] buffer = AdapterFileBuffers.Rent(5000);
        buffer.AsSpan(0, 5000).Fill(0xAB);

        AdapterFileBuffers.Return(buffer, 5000);

        Assert.DoesNotContain(buffer.AsSpan(0, 5000).ToArray(), b => b != 0);
    }

    [Fact]
    public void Rent_AboveThePooledSize_AnArrayOfItsOwnNotKept()
    {
        byte[] big = AdapterFileBuffers.Rent(AdapterFileBuffers.MaxPooledBytes + 1);
        big[0] = 1;

        AdapterFileBuffers.Return(big, big.Length);

        Assert.Equal(AdapterFileBuffers.MaxPooledBytes + 1, big.Length);
        Assert.Equal(1, big[0]);   // not cleared: it goes to the garbage collector, not to another read
    }
}
