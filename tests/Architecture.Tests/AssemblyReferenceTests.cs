using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Serving.Architecture.Tests.Support;

namespace Serving.Architecture.Tests;

/// <summary>What the built assemblies actually reference (their metadata), beside what the project files declare.</summary>
public sealed class AssemblyReferenceTests
{
    [Theory]
    [InlineData("Contracts", "Serving.Contracts")]
    [InlineData("Batching", "Serving.Batching")]
    public void References_LowerLayer_NoEngineStoreTorchAwsOrPolly(string project, string assembly)
    {
        var references = ReferencedAssemblies(RepositoryPaths.BuiltAssembly(project, assembly));

        Assert.DoesNotContain(references, r => r is "Serving.Engine" or "Serving.AdapterStore" or "Serving.Runtime" or "Serving.Server" or "TorchSharp"
            || r.StartsWith("AWSSDK", StringComparison.Ordinal) || r.StartsWith("Polly", StringComparison.Ordinal));
    }

    [Fact]
    public void References_Contracts_OnlyTheFramework()
    {
        var references = ReferencedAssemblies(RepositoryPaths.BuiltAssembly("Contracts", "Serving.Contracts"));

        Assert.All(references, r => Assert.True(r.StartsWith("System", StringComparison.Ordinal) || r == "netstandard", $"Serving.Contracts references {r}"));
    }

    [Fact]
    public void References_AdapterStore_NoEngineOrTorch()
    {
        var references = ReferencedAssemblies(RepositoryPaths.BuiltAssembly("AdapterStore", "Serving.AdapterStore"));

        Assert.DoesNotContain("Serving.Engine", references);
        Assert.DoesNotContain("TorchSharp", references);
    }

    [Fact]
    public void References_Runtime_NoProtocolsOrAuthoring()
    {
        var references = ReferencedAssemblies(RepositoryPaths.BuiltAssembly("Runtime", "Serving.Runtime"));

        Assert.DoesNotContain(references, r => r is "Serving.Server" or "Serving.Authoring" || r.StartsWith("Grpc", StringComparison.Ordinal));
    }

    /// <summary>The protocol layer speaks to the runtime only: no engine, scheduler or libtorch type appears in its code.</summary>
    [Fact]
    public void References_Server_NoEngineSchedulerOrTorch()
    {
        var references = ReferencedAssemblies(RepositoryPaths.BuiltAssembly("Server", "Serving.Server"));

        Assert.Contains("Serving.Runtime", references);
        Assert.DoesNotContain(references, r => r is "Serving.Engine" or "Serving.Batching" or "TorchSharp");
    }

    private static List<string> ReferencedAssemblies(string path)
    {
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        return metadata.AssemblyReferences.Select(h => metadata.GetString(metadata.GetAssemblyReference(h).Name)).ToList();
    }
}
