using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;
using Serving.Tests.Shared;

namespace Serving.Contracts.Tests.Configuration;

public sealed class KvCacheGroupsTests
{
    private static ModelConfig Config(string architecture, int layers, string fields)
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray(architecture);
        o["num_hidden_layers"] = layers;
        foreach (var (key, value) in JsonNode.Parse(fields)!.AsObject())
            o[key] = value?.DeepClone();
        return ModelConfig.Parse(o, "config.json");
    }

    [Fact]
    public void For_AlternatingLayers_TwoGroupsOfHalfTheLayers()
    {
        var kinds = new JsonArray([.. Enumerable.Range(0, 24).Select(l => JsonValue.Create(l % 2 == 0 ? "sliding_attention" : "full_attention"))]);
        var groups = KvCacheGroups.For(Config("MistralForCausalLM", 24, $$"""{"sliding_window": 128, "layer_types": {{kinds.ToJsonString()}}}"""));

        Assert.Equal(2, groups.Count);
        Assert.Equal(12, groups.LayersPerGroup);
        Assert.Equal([null, 128], groups.Windows);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => 2 * i + 1), groups.Layers[0]);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => 2 * i), groups.Layers[1]);
        Assert.Equal((1, 3), (groups.GroupOf(6), groups.SlotOf(6)));
        Assert.Equal((0, 3), (groups.GroupOf(7), groups.SlotOf(7)));
        Assert.True(groups.Slides);
    }

    /// <summary>Gemma 3 1B: 26 layers, every sixth whole-context: 4 of those, 22 sliding in groups of 4 (the last of 2).</summary>
    [Fact]
    public void For_FiveSlidingInSix_GroupsOfTheWholeContextCount()
    {
        var groups = KvCacheGroups.For(Config("Gemma3ForCausalLM", 26, """{"sliding_window": 512, "sliding_window_pattern": 6}"""));

        Assert.Equal(4, groups.LayersPerGroup);
        Assert.Equal(7, groups.Count);
        Assert.Equal([5, 11, 17, 23], groups.Layers[0]);
        Assert.Equal([0, 1, 2, 3], groups.Layers[1]);
        Assert.Equal([24, 25], groups.Layers[6]);
        Assert.Equal([null, 512, 512, 512, 512, 512, 512], groups.Windows);
        Assert.Equal(Enumerable.Range(0, 26), groups.Layers.SelectMany(g => g).Order());
        Assert.All(Enumerable.Range(0, 26), l => Assert.Equal(l, groups.Layers[groups.GroupOf(l)][groups.SlotOf(l)]));
    }

    [Theory]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096}""", 4096)]
    [InlineData("LlamaForCausalLM", "{}", null)]
    public void For_LayersAllAlike_OneGroup(string architecture, string fields, int? window)
    {
        var groups = KvCacheGroups.For(Config(architecture, 4, fields));

        Assert.Equal(1, groups.Count);
        Assert.Equal(4, groups.LayersPerGroup);
        Assert.Equal([window], groups.Windows);
        Assert.Equal(window is not null, groups.Slides);
    }

    [Fact]
    public void For_HybridOff_OneWholeContextGroup()
    {
        var groups = KvCacheGroups.For(Config("Gemma3ForCausalLM", 26, """{"sliding_window": 512}"""), hybrid: false);

        Assert.Equal(1, groups.Count);
        Assert.Equal([null], groups.Windows);
        Assert.Equal(0, groups.FirstHeld(0, 5000));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(127, 0)]
    [InlineData(128, 1)]
    [InlineData(1000, 873)]
    public void FirstHeld_SlidingGroup_ThePositionsTheWindowReaches(int position, int first)
    {
        var groups = KvCacheGroups.For(Config("MistralForCausalLM", 2, """{"sliding_window": 128}"""));

        Assert.Equal(first, groups.FirstHeld(0, position));
    }
}
