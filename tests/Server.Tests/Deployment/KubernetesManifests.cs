using YamlDotNet.RepresentationModel;

namespace Serving.Server.Tests.Deployment;

/// <summary>
/// The objects a kustomization renders, read offline: its <c>resources</c> (files, multi-document YAML, and nested
/// kustomization folders) as YAML mappings. Patches are not applied; the overlay tests read them directly.
/// </summary>
internal static class KubernetesManifests
{
    public static List<YamlMappingNode> Load(string kustomizationFolder)
    {
        var objects = new List<YamlMappingNode>();
        var kustomization = Documents(Path.Combine(kustomizationFolder, "kustomization.yaml")).Single();
        foreach (var resource in Sequence(kustomization, "resources"))
        {
            string path = Path.GetFullPath(Path.Combine(kustomizationFolder, resource));
            if (Directory.Exists(path))
                objects.AddRange(Load(path));
            else
                objects.AddRange(Documents(path));
        }

        return objects;
    }

    public static IEnumerable<YamlMappingNode> Documents(string file)
    {
        Assert.True(File.Exists(file), $"{file} is listed but missing");
        var stream = new YamlStream();
        using (var reader = new StreamReader(file))
            stream.Load(reader);
        return stream.Documents.Select(d => (YamlMappingNode)d.RootNode);
    }

    public static YamlMappingNode Single(this IEnumerable<YamlMappingNode> objects, string kind, string? name = null) =>
        objects.Where(o => Text(o, "kind") == kind && (name is null || Text(o, "metadata", "name") == name)).Should($"{kind} {name}");

    private static YamlMappingNode Should(this IEnumerable<YamlMappingNode> matches, string what)
    {
        var list = matches.ToList();
        Assert.True(list.Count == 1, $"expected one {what}, found {list.Count}");
        return list[0];
    }

    /// <summary>The node at a path of mapping keys and sequence indexes ("0"), or null.</summary>
    public static YamlNode? At(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            node = node switch
            {
                YamlMappingNode m when m.Children.TryGetValue(new YamlScalarNode(key), out var child) => child,
                YamlSequenceNode s when int.TryParse(key, out int i) && i < s.Children.Count => s.Children[i],
                _ => null!,
            };
            if (node is null)
                return null;
        }

        return node;
    }

    public static string? Text(YamlNode node, params string[] path) => (At(node, path) as YamlScalarNode)?.Value;

    public static IEnumerable<string> Sequence(YamlNode node, params string[] path) =>
        (At(node, path) as YamlSequenceNode)?.Children.OfType<YamlScalarNode>().Select(s => s.Value!) ?? [];

    public static IEnumerable<YamlMappingNode> Items(YamlNode node, params string[] path) =>
        (At(node, path) as YamlSequenceNode)?.Children.OfType<YamlMappingNode>() ?? [];

    public static Dictionary<string, string> Labels(YamlNode node, params string[] path) =>
        (At(node, path) as YamlMappingNode)?.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => ((YamlScalarNode)kv.Value).Value!) ?? [];
}
