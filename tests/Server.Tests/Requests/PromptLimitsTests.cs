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

    [Theory]
    [InlineData(32, 20)]   // asked for more than the generation config allows: cut to it
    [InlineData(8, 8)]     // asked for less: kept
    [InlineData(0, 20)]    // no max_tokens (chat): what the context leaves, then cut
    public void Apply_GenerationConfigMaxNewTokens_CutsTheBudget(int asked, int expected) =>
        Assert.Equal(expected, PromptLimits.Apply([1, 2, 3], new SamplingParams { MaxTokens = asked }, 64, 100, maxNewTokens: 20).MaxTokens);

    [Fact]
    public void Apply_OverTheContextThoughUnderTheCap_StillRefused()
    {
        // vLLM checks what the request asked against the context before cutting it: a request that could not fit is a 400.
        var error = Assert.Throws<ApiException>(() => PromptLimits.Apply([1, 2, 3], new SamplingParams { MaxTokens = 62 }, 64, 100, maxNewTokens: 20));
        Assert.Equal((400, "max_tokens"), (error.Status, error.Param));
    }

    [Fact]
    public void Apply_MinTokensAboveTheCap_400NamingMinTokens()
    {
        var error = Assert.Throws<ApiException>(() => PromptLimits.Apply([1, 2, 3], new SamplingParams { MaxTokens = 32, MinTokens = 25 }, 64, 100, maxNewTokens: 20));
        Assert.Equal((400, "min_tokens"), (error.Status, error.Param));
        Assert.Contains("20 tokens", error.Message);
    }
}
