namespace Serving.Contracts;

/// <summary>Files an adapter folder may ship beside its PEFT files, by the names the server looks for.</summary>
public static class AdapterFileNames
{
    /// <summary>JSON lines of <c>{"prompt": string}</c>: examples of the queries an adapter serves, for the centroid router.</summary>
    public const string RoutingExamples = "routing_examples.jsonl";
}
