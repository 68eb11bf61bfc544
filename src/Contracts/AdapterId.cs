namespace Serving.Contracts;

/// <summary>
/// The name of an adapter as clients use it (<c>model</c> in requests, <c>lora_name</c> in management calls) and as
/// the folder name in a local store. Only letters, digits, '.', '_', '-' and interior '/'-free text: an id can never
/// address a path outside the store.
/// </summary>
public readonly record struct AdapterId
{
    public const int MaxLength = 128;

    /// <summary><c>model: "auto"</c> asks the server to route; no adapter may be named so, in any letter case.</summary>
    public const string Auto = "auto";

    /// <summary>Whether this is the reserved routing name in some letter case.</summary>
    public bool IsReserved => string.Equals(Value, Auto, StringComparison.OrdinalIgnoreCase);

    private AdapterId(string value) => Value = value;

    public string Value { get; }

    public static AdapterId Parse(string text) =>
        TryParse(text, out var id, out string? error) ? id : throw new ArgumentException(error, nameof(text));

    public static bool TryParse(string? text, out AdapterId id, out string? error)
    {
        id = default;
        error = text switch
        {
            null or "" => "adapter id must not be empty",
            { Length: > MaxLength } => $"adapter id is longer than {MaxLength} characters",
            "." or ".." => $"adapter id '{text}' is a path component",
            _ when text.Contains("..", StringComparison.Ordinal) => $"adapter id '{text}' contains '..'",
            _ when !text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') =>
                $"adapter id '{text}' may only contain ASCII letters, digits, '.', '_' and '-'",
            _ => null,
        };
        if (error is null)
            id = new AdapterId(text!);
        return error is null;
    }

    public override string ToString() => Value;
}
