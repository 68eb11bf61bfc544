namespace Serving.Runtime.Hosting;

/// <summary>The default model's folder and served name, and the adapter store folder that comes with it (null: none).</summary>
public sealed record DefaultModelFolders(string ModelPath, string Name, string? AdapterRoot);
