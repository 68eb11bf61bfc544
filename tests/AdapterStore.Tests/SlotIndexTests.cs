using Serving.Contracts;

namespace Serving.AdapterStore.Tests;

public sealed class SlotIndexTests
{
    [Fact]
    public void BaseModel_IsTheNegativeSentinel()
    {
        Assert.True(SlotIndex.BaseModel.IsBaseModel);
        Assert.Equal("base", SlotIndex.BaseModel.ToString());
        Assert.False(new SlotIndex(0).IsBaseModel);
        Assert.Equal("3", new SlotIndex(3).ToString());
    }
}
