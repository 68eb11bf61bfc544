namespace Serving.LoadTests.Scenarios;

/// <summary>A scenario or command line the load generator cannot run; the message says what to change.</summary>
internal sealed class ScenarioException(string message) : Exception(message);
