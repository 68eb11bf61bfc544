using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;

namespace Serving.Contracts.Tests.Configuration;

public sealed class ConfigOverridesTests
{
    [Fact]
    public void Apply_NestedObjectAndScalars_MergedFieldByFieldOthersReplaced()
    {
        var config = JsonNode.Parse("""{"hidden_size": 64, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}, "layer_types": ["a", "b"]}""")!.AsObject();
        var overrides = JsonNode.Parse("""{"rope_scaling": {"factor": 8.0}, "layer_types": ["c"], "max_position_embeddings": 4096}""")!.AsObject();

        ConfigOverrides.Apply(config, overrides);

        Assert.Equal("""{"hidden_size":64,"rope_scaling":{"rope_type":"yarn","factor":8.0},"layer_types":["c"],"max_position_embeddings":4096}""", config.ToJsonString());
    }

    [Fact]
    public void Apply_NullOverObject_Replaces()
    {
        var config = JsonNode.Parse("""{"rope_scaling": {"factor": 4.0}}""")!.AsObject();
        ConfigOverrides.Apply(config, JsonNode.Parse("""{"rope_scaling": null}""")!.AsObject());
        Assert.Null(config["rope_scaling"]);
        Assert.True(config.ContainsKey("rope_scaling"));
    }
}
