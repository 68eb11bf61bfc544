namespace Serving.AdapterStore.Files;

/// <summary>
/// Local adapter locations as callers write them: a plain path or a <c>file://</c> URI. URIs are decoded here, once, before
/// any prefix comparison (a check on the raw text would let <c>%2e%2e</c> climb out after decoding).
/// </summary>
public static class LocalAdapterPath
{
    public static bool IsLocal(string uri) => !uri.Contains("://", StringComparison.Ordinal) || uri.StartsWith("file://", StringComparison.OrdinalIgnoreCase);

    /// <summary>The absolute, normalised local path; null when <paramref name="uri"/> is not a usable local location.</summary>
    public static string? TryFromUri(string uri)
    {
        if (string.IsNullOrEmpty(uri) || HasInvalidCharacter(uri) || !IsLocal(uri))
            return null;
        string path = uri;
        if (uri.StartsWith("file://", StringComparison.OrdinalIgnoreCase))
        {
            if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || !parsed.IsFile
                || !(parsed.Host.Length == 0 || string.Equals(parsed.Host, "localhost", StringComparison.OrdinalIgnoreCase)))
                return null;
            path = Uri.UnescapeDataString(parsed.AbsolutePath);
            if (HasInvalidCharacter(path))
                return null;
        }

        return Path.GetFullPath(path);
    }

    /// <summary>NUL and other control characters: never part of a real adapter path.</summary>
    public static bool HasInvalidCharacter(string text) => text.Any(c => c < ' ' || c == '\u007f');
}
