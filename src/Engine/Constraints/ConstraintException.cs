namespace Serving.Engine.Constraints;

/// <summary>
/// An output constraint that cannot be compiled: an unsupported or malformed JSON Schema keyword, regex construct or choice
/// list. <see cref="Path"/> says where, as a JSON path into the schema (<c>$.properties.dose.multipleOf</c>) or a
/// position in the pattern (<c>regex[12]</c>), so the API can name it in its 400.
/// </summary>
public sealed class ConstraintException(string path, string message) : Exception($"{path}: {message}")
{
    /// <summary>Where the problem is, relative to the constraint's own source.</summary>
    public string Path { get; } = path;

    /// <summary>The problem, without the path.</summary>
    public string Problem { get; } = message;
}
