using Serving.Engine.Routing;

namespace Serving.Engine.Tests.Routing;

public sealed class CentroidRouterTests
{
    [Fact]
    public void Route_PromptNearOneCentroid_ThatOneFirst()
    {
        var north = CentroidRouter.Centroid([CentroidRouter.Pool([0f, 1f, 0f, 2f], 2), CentroidRouter.Pool([0.1f, 1f], 1)]);
        var east = CentroidRouter.Centroid([CentroidRouter.Pool([1f, 0f], 1)]);

        var (chosen, scores) = CentroidRouter.Route([east, north], CentroidRouter.Pool([0.2f, 0.9f, 0f, 1.1f], 2), topK: 2, temperature: 0.1);

        Assert.Equal([1, 0], chosen.Select(c => c.Candidate));
        Assert.True(chosen[0].Weight > 0.9f);
        Assert.True(scores[1] > 0.99 && scores[0] < 0.3);
    }

    [Fact]
    public void Centroid_NoExamples_Throws() => Assert.Throws<ArgumentException>(() => CentroidRouter.Centroid([]));
}
