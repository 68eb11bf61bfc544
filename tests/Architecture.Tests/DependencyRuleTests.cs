using Serving.Architecture.Tests.Support;

namespace Serving.Architecture.Tests;

public sealed class DependencyRuleTests
{
    private static readonly ProjectGraph Graph = ProjectGraph.Read(RepositoryPaths.Root);

    [Fact]
    public void Check_TheRepositoryAsItIs_HasNoViolations()
    {
        var violations = DependencyRule.Check(Graph);

        Assert.True(violations.Count == 0, string.Join(Environment.NewLine, violations));
    }

    [Fact]
    public void Read_TheRepository_FindsEveryLayer()
    {
        Assert.Superset(new HashSet<string> { "Contracts", "Batching", "AdapterStore", "Engine", "Authoring", "Runtime", "Server" }, Graph.Projects.Keys.ToHashSet());
    }

    [Theory]
    [InlineData("Batching", "Engine")]
    [InlineData("Batching", "AdapterStore")]
    [InlineData("AdapterStore", "Engine")]
    [InlineData("Engine", "Batching")]
    [InlineData("Contracts", "Engine")]
    [InlineData("Server", "Engine")]
    [InlineData("Server", "Batching")]
    public void Check_AForbiddenProjectReferenceAdded_NamesIt(string from, string to)
    {
        var violations = DependencyRule.Check(Graph.WithReference(from, to));

        string allowed = DependencyRule.AllowedReferences[from].Length == 0 ? "nothing" : string.Join(", ", DependencyRule.AllowedReferences[from]);
        Assert.Equal($"{from} references {to}; it may reference only {allowed}", Assert.Single(violations));
    }

    [Theory]
    [InlineData("Contracts", "TorchSharp")]
    [InlineData("Batching", "Polly.Core")]
    [InlineData("AdapterStore", "TorchSharp")]
    public void Check_AForbiddenPackageAdded_NamesIt(string project, string package)
    {
        var violation = Assert.Single(DependencyRule.Check(Graph.WithPackage(project, package)));

        Assert.StartsWith($"{project} references package {package}", violation, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Engine", "Serving.Runtime")]
    [InlineData("Runtime", "Serving.Server")]
    [InlineData("Server", "Serving.Bench")]
    public void Check_AnInternalsVisibleToGrantToANonTestAssembly_NamesIt(string project, string friend)
    {
        var violation = Assert.Single(DependencyRule.Check(Graph.WithFriend(project, friend)));

        Assert.StartsWith($"{project} grants InternalsVisibleTo {friend}; only test projects may see internals", violation, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_BatchingReachesOnlyContracts_NoLibtorchAwsOrPollyBelowIt()
    {
        var closure = Graph.Closure("Batching");

        Assert.Equal(["Contracts"], closure);
        Assert.Empty(closure.SelectMany(p => Graph.Projects[p].Packages));
    }

    [Fact]
    public void Check_RuntimeReachesNoProtocolOrAuthoringCode()
    {
        var closure = Graph.Closure("Runtime");

        Assert.DoesNotContain("Server", closure);
        Assert.DoesNotContain("Authoring", closure);
    }
}
