using Microsoft.Extensions.Options;

namespace Serving.Runtime.Speculation;

/// <summary>Refuses start-up on invalid <c>Serving:Speculation</c> settings, naming each.</summary>
internal sealed class SpeculationOptionsValidator : IValidateOptions<SpeculationOptions>
{
    public ValidateOptionsResult Validate(string? name, SpeculationOptions options) =>
        options.Validate().ToList() is { Count: > 0 } errors ? ValidateOptionsResult.Fail(errors) : ValidateOptionsResult.Success;
}
