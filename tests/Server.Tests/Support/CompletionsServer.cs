namespace Serving.Server.Tests.Support;

/// <summary>
/// One demo server shared by the completions endpoint's test classes (each class would otherwise start its own and wait
/// for its demo adapters' training): they run one after another against it, beside the other collections.
/// </summary>
[CollectionDefinition(nameof(CompletionsServer))]
public sealed class CompletionsServer : ICollectionFixture<DemoServerFixture>;
