using System.Xml.Linq;

namespace Serving.Architecture.Tests.Support;

/// <summary>
/// The projects under <c>src/</c> as their .csproj files declare them: each project's name (its folder), the projects it
/// references, its package references and the assemblies it grants <c>InternalsVisibleTo</c>.
/// </summary>
internal sealed record ProjectGraph(IReadOnlyDictionary<string, ProjectNode> Projects)
{
    public static ProjectGraph Read(string repositoryRoot)
    {
        var projects = new Dictionary<string, ProjectNode>(StringComparer.Ordinal);
        foreach (string file in Directory.EnumerateFiles(Path.Combine(repositoryRoot, "src"), "*.csproj", SearchOption.AllDirectories))
        {
            var xml = XDocument.Load(file);
            string name = Path.GetFileNameWithoutExtension(file);
            var references = xml.Descendants("ProjectReference")
                .Select(e => Path.GetFileNameWithoutExtension((string)e.Attribute("Include")!.Value.Replace('\\', '/'))).ToList();
            var packages = xml.Descendants("PackageReference").Select(e => (string)e.Attribute("Include")!).ToList();
            var friends = xml.Descendants("InternalsVisibleTo").Select(e => (string)e.Attribute("Include")!).ToList();
            projects[name] = new ProjectNode(name, references, packages, friends);
        }

        return new ProjectGraph(projects);
    }

    /// <summary>The projects <paramref name="project"/> reaches through project references, itself excluded.</summary>
    public IReadOnlySet<string> Closure(string project)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>(Projects[project].References);
        while (pending.TryPop(out string? next))
            if (seen.Add(next) && Projects.TryGetValue(next, out var node))
                foreach (string r in node.References)
                    pending.Push(r);
        return seen;
    }

    /// <summary>A copy with one more project reference, as a developer adding it would make.</summary>
    public ProjectGraph WithReference(string from, string to) => new(Projects.ToDictionary(p => p.Key,
        p => p.Key == from ? p.Value with { References = [.. p.Value.References, to] } : p.Value, StringComparer.Ordinal));

    /// <summary>A copy with one more package reference.</summary>
    public ProjectGraph WithPackage(string project, string package) => new(Projects.ToDictionary(p => p.Key,
        p => p.Key == project ? p.Value with { Packages = [.. p.Value.Packages, package] } : p.Value, StringComparer.Ordinal));

    /// <summary>A copy with one more InternalsVisibleTo grant.</summary>
    public ProjectGraph WithFriend(string project, string friend) => new(Projects.ToDictionary(p => p.Key,
        p => p.Key == project ? p.Value with { Friends = [.. p.Value.Friends, friend] } : p.Value, StringComparer.Ordinal));
}
