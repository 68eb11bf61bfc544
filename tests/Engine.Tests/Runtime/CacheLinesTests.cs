using Serving.Engine.Runtime;

namespace Serving.Engine.Tests.Runtime;

public sealed unsafe class CacheLinesTests
{
    [Fact]
    public void Align_EveryStartInALine_NextBoundaryWithinTheSlack()
    {
        var buffer = GC.AllocateArray<byte>(4 * CacheLines.Bytes, pinned: true);
        fixed (byte* first = buffer)
        {
            for (int offset = 0; offset < 2 * CacheLines.Bytes; offset += sizeof(float))
            {
                float* start = (float*)(first + offset);
                float* aligned = CacheLines.Align(start);

                Assert.Equal(0, (long)aligned % CacheLines.Bytes);
                Assert.InRange(aligned - start, 0, CacheLines.Slack<float>() - 1);
                Assert.Equal((long)start % CacheLines.Bytes == 0, aligned == start);
            }
        }
    }

    [Fact]
    public void Slack_ElementSizes_CoverOneLine()
    {
        Assert.Equal(64, CacheLines.Slack<byte>());
        Assert.Equal(32, CacheLines.Slack<ushort>());
        Assert.Equal(16, CacheLines.Slack<float>());
    }
}
