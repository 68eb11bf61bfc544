using Serving.AdapterStore.Registry;

namespace Serving.Server.Security;

/// <summary>
/// Who is calling, from the API key: a tenant, a role, the source prefixes it may register adapters from, and the most
/// urgent scheduling priority it may ask for. With no keys configured every caller is <see cref="Open"/> (local
/// development: an admin of the shared space).
/// </summary>
internal sealed record Caller(string Tenant, CallerRole Role, IReadOnlyList<string> AllowedSources, int? MostUrgentPriority = null)
{
    public static readonly Caller Open = new("", CallerRole.Admin, []);

    public bool IsAdmin => Role == CallerRole.Admin;

    /// <summary>
    /// The most urgent priority this caller may ask for: its key's setting, else none for admins and 0 for users — a
    /// tenant's own key must never let it jump ahead of other tenants' requests.
    /// </summary>
    public int PriorityFloor => MostUrgentPriority ?? (IsAdmin ? int.MinValue : 0);

    /// <summary>Shared adapters, the caller's own, and for admins every adapter.</summary>
    public bool CanUse(AdapterRecord record) => IsAdmin || record.Tenant is null || record.Tenant == Tenant;

    /// <summary>Where an adapter's files are: its owner's (it gave the path) and admins', never other callers' (server paths).</summary>
    public bool MaySeeSourceOf(AdapterRecord record) => IsAdmin || (record.Tenant is not null && record.Tenant == Tenant);

    /// <summary>Replace or remove: the owner, or an admin.</summary>
    public bool CanManage(AdapterRecord record) => IsAdmin || (record.Tenant is not null && record.Tenant == Tenant);

    /// <summary>
    /// Whether an adapter may be registered from <paramref name="path"/>: admins anywhere; users only under one of their
    /// prefixes, compared after decoding <c>file://</c> URIs and normalising (so neither <c>..</c> nor <c>%2e%2e</c> climbs
    /// out of one). This is the check on the text the caller sent; the files are checked again after every link is
    /// resolved (<see cref="AdapterStore.Files.AdapterFileReader"/>).
    /// </summary>
    public bool MayReadFrom(string path)
    {
        if (IsAdmin)
            return true;
        if (Normalize(path) is not string normalized)
            return false;
        return AllowedSources.Any(prefix =>
        {
            if (Normalize(prefix)?.TrimEnd('/') is not string p || p.Length == 0)
                return false;
            return normalized == p || normalized.StartsWith(p + "/", StringComparison.Ordinal);
        });
    }

    private static string? Normalize(string path)
    {
        if (path.StartsWith("s3://", StringComparison.Ordinal))
        {
            var segments = new List<string>();
            foreach (string s in path["s3://".Length..].Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (s == "..")
                    return "s3://invalid";                           // no climbing in object keys either
                if (s != ".")
                    segments.Add(s);
            }

            return "s3://" + string.Join('/', segments);
        }

        return AdapterStore.Files.LocalAdapterPath.TryFromUri(path);
    }
}
