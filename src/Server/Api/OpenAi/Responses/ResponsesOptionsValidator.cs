using Microsoft.Extensions.Options;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>Checks <see cref="ResponsesOptions"/> at start-up; the failure names the setting and the value.</summary>
internal sealed class ResponsesOptionsValidator : IValidateOptions<ResponsesOptions>
{
    public ValidateOptionsResult Validate(string? name, ResponsesOptions options) =>
        options.Validate().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
}
