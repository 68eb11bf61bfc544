using Microsoft.Extensions.Options;

namespace Serving.Server.Api.OpenAi;

/// <summary>Checks <see cref="ChatOptions"/> at start-up; the failure names the setting and the value.</summary>
internal sealed class ChatOptionsValidator : IValidateOptions<ChatOptions>
{
    public ValidateOptionsResult Validate(string? name, ChatOptions options) =>
        options.Validate().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
}
