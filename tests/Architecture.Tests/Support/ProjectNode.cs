namespace Serving.Architecture.Tests.Support;

/// <summary>One project of <c>src/</c>: its direct project references, package references and InternalsVisibleTo grants.</summary>
internal sealed record ProjectNode(string Name, IReadOnlyList<string> References, IReadOnlyList<string> Packages, IReadOnlyList<string> Friends);
