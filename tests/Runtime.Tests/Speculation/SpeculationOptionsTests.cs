using Serving.Runtime.Speculation;

namespace Serving.Runtime.Tests.Speculation;

public sealed class SpeculationOptionsTests
{
    [Theory]
    [InlineData(1, 1, 7)]      // one stream: every draft it may carry
    [InlineData(2, 2, 3)]      // 6 rows left, shared by two
    [InlineData(4, 4, 1)]
    [InlineData(4, 1, 4)]      // only one of four drafts: it takes the four rows left
    [InlineData(3, 3, 1)]
    [InlineData(8, 8, 0)]      // a full step: none
    [InlineData(16, 1, 0)]
    [InlineData(40, 3, 0)]
    [InlineData(3, 0, 0)]
    public void DraftsPerSequence_RowsLeftSharedByTheDraftingSequences(int running, int drafting, int expected)
    {
        Assert.Equal(expected, new SpeculationOptions().DraftsPerSequence(running, drafting));
    }

    [Fact]
    public void Validate_Defaults_Valid() => Assert.Empty(new SpeculationOptions().Validate());

    [Theory]
    [InlineData(-1, 2, 4, 16, "Tokens")]
    [InlineData(17, 2, 4, 16, "Tokens")]
    [InlineData(4, 0, 4, 16, "PromptLookupMin")]
    [InlineData(4, 5, 4, 16, "PromptLookupMax")]
    [InlineData(4, 2, 4, 1, "MaxStepRows")]
    public void Validate_OutOfRange_NamesTheSetting(int tokens, int min, int max, int rows, string setting)
    {
        var errors = new SpeculationOptions { Tokens = tokens, PromptLookupMin = min, PromptLookupMax = max, MaxStepRows = rows }.Validate();

        Assert.Contains(errors, e => e.Contains(setting, StringComparison.Ordinal));
    }
}
