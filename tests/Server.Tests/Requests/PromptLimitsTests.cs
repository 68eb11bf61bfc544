using Serving.Contracts.Generation;
using Serving.Server.Api;
using Serving.Server.Requests;

namespace Serving.Server.Tests.Requests;

public sealed class PromptLimitsTests
{
    [Fact]
    public void CheckTokenIds_AllowedIdsRepeated_KeptOnceInOrder()
    {
        var sampling = new SamplingParams { AllowedTokenIds = [.. Enumerable.Repeat(7, 1_000_000), 3, 7, 3] };
        Assert.Equal([7, 3], PromptLimits.CheckTokenIds(sampling, 100).AllowedTokenIds);
    }

    [Theory]
    [InlineData(100, "allowed_token_ids")]
    [InlineData(5000, "logit_bias")]
    public void CheckTokenIds_IdOutsideTheVocabulary_400NamingTheField(int id, string field)
    {
        var sampling = field == "logit_bias"
            ? new SamplingParams { LogitBias = new Dictionary<int, float> { [id] = 1f } }
            : new SamplingParams { AllowedTokenIds = [1, id] };
        var error = Assert.Throws<ApiException>(() => PromptLimits.CheckTokenIds(sampling, 100));
        Assert.Equal((400, field), (error.Status, error.Param));
    }
}
