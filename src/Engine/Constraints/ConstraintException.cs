namespace Serving.Engine.Constraints;

/// <summary>
/// An output constraint that cannot be compiled: an unsupported or malformed JSON Schema keyword, regex construct or choice
/// list. <see cref="Path"/> says where, as a JSON path into the schema (<c>$.properties.dose.not</c>) or a
/// position in the pattern (<c>regex[12]</c>), so the API can name it in its 400. Also thrown while generating, when a
/// constraint's automaton outgrows its memory bounds (<see cref="LazyDfa"/>).
/// </summary>
public sealed class ConstraintException(string path, string message) : Exception($"{path}: {message}")
{
    /// <summary>Where the problem is, relative to the constraint's own source.</summary>
    public string Path { get; } = path;

    /// <summary>The problem, without the path.</summary>
    public string Problem { get; } = message;

    /// <summary>The constraint error behind <paramref name="failure"/>, however a step's parallel parts wrapped it; else null.</summary>
    public static ConstraintException? Within(Exception failure) => failure switch
    {
        ConstraintException constraint => constraint,
        AggregateException aggregate => aggregate.Flatten().InnerExceptions.Select(Within).FirstOrDefault(c => c is not null),
        { InnerException: { } inner } => Within(inner),
        _ => null,
    };
}
