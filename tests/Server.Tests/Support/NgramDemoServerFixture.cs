namespace Serving.Server.Tests.Support;

/// <summary>The demo server with n-gram speculation on for every request (drafts from a single recurring token up).</summary>
public sealed class NgramDemoServerFixture : DemoServerFixture
{
    protected override string[] ExtraArguments =>
        ["--speculation", "ngram", "--num-speculative-tokens", "4", "--prompt-lookup-min", "1", "--prompt-lookup-max", "3",
         "--Serving:Speculation:MaxPredictionTokens", "300"];
}
