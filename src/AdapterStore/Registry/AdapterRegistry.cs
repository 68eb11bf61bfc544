using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Contracts;

namespace Serving.AdapterStore.Registry;

/// <summary>
/// Adapters registered at run time (<c>load_lora_adapter</c>), persisted to a JSON file so they survive a restart.
/// Every change rewrites the file to a temporary name and renames it over the old one, so a crash mid-write leaves
/// either the old or the new registry, never a torn one. A <see cref="AdapterRecord.ProcessOnly"/> registration (the
/// command line's) is served over a persisted one of the same name for this process and never written: the file keeps
/// what run-time registrations made. Thread-safe.
/// </summary>
public sealed class AdapterRegistry
{
    private readonly string? _path;
    private readonly Lock _lock = new();
    private Dictionary<AdapterId, AdapterRecord> _records = [];     // what is served: the persisted ones under the process-only ones
    private Dictionary<AdapterId, AdapterRecord> _persisted = [];   // what the file holds

    public AdapterRegistry(string? path)
    {
        _path = path;
        if (path is null)
            return;
        RemoveStaleTemporaryFiles(path);
        if (File.Exists(path))
            _persisted = _records = Read(path);
    }

    /// <summary>A process killed between writing its temporary file and renaming it leaves the file behind; it never became the registry.</summary>
    private static void RemoveStaleTemporaryFiles(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is null || !Directory.Exists(dir))
            return;
        foreach (string temp in Directory.EnumerateFiles(dir, Path.GetFileName(path) + ".tmp-*"))
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
            }
        }
    }

    public AdapterRecord? Get(AdapterId id)
    {
        lock (_lock)
            return _records.GetValueOrDefault(id);
    }

    public IReadOnlyList<AdapterRecord> All()
    {
        lock (_lock)
            return _records.Values.OrderBy(r => r.Id.Value, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Adds or replaces (hot swap) a registration; returns the previous one. A persisted one replaces a process-only one of
    /// the same name (a run-time registration outlives the command line's); a process-only one leaves the file as it is.
    /// </summary>
    /// <param name="record">The registration.</param>
    /// <param name="tenantLimit">When set, a new registration for <see cref="AdapterRecord.Tenant"/> is refused if that
    /// tenant already holds this many (checked and added under one lock, so concurrent registrations cannot pass it together).</param>
    public AdapterRecord? Put(AdapterRecord record, int? tenantLimit = null)
    {
        lock (_lock)
        {
            if (tenantLimit is int limit && !_records.ContainsKey(record.Id) && CountOf(record.Tenant) >= limit)
                throw TenantFull(record.Tenant, limit);
            if (!record.ProcessOnly)
            {
                var persisted = new Dictionary<AdapterId, AdapterRecord>(_persisted) { [record.Id] = record };
                Persist(persisted);
                _persisted = persisted;
            }

            _records.TryGetValue(record.Id, out var previous);
            _records = new Dictionary<AdapterId, AdapterRecord>(_records) { [record.Id] = record };
            return previous;
        }
    }

    /// <summary>Throws when <paramref name="tenant"/> already holds <paramref name="limit"/> registrations (a check before reading any file; <see cref="Put"/> checks again).</summary>
    public void CheckRoomFor(string? tenant, AdapterId id, int limit)
    {
        lock (_lock)
            if (!_records.ContainsKey(id) && CountOf(tenant) >= limit)
                throw TenantFull(tenant, limit);
    }

    private int CountOf(string? tenant) => _records.Values.Count(r => r.Tenant == tenant);

    private static AdapterStoreException TenantFull(string? tenant, int limit) => new(AdapterStoreFailure.QuotaExceeded, AdapterStoreSubject.Name,
        $"tenant '{tenant}' already holds {limit} registered adapters, the most Serving:Adapters:MaxPerTenant allows; unload one first");

    public bool Remove(AdapterId id)
    {
        lock (_lock)
        {
            if (!_records.ContainsKey(id))
                return false;
            if (_persisted.ContainsKey(id))
            {
                var persisted = new Dictionary<AdapterId, AdapterRecord>(_persisted);
                persisted.Remove(id);
                Persist(persisted);
                _persisted = persisted;
            }

            var next = new Dictionary<AdapterId, AdapterRecord>(_records);
            next.Remove(id);
            _records = next;
            return true;
        }
    }

    private void Persist(Dictionary<AdapterId, AdapterRecord> records)
    {
        if (_path is null)
            return;
        var array = new JsonArray(records.Values.OrderBy(r => r.Id.Value, StringComparer.Ordinal).Select(r => (JsonNode)new JsonObject
        {
            ["id"] = r.Id.Value,
            ["source"] = r.Source,
            ["version"] = r.Version,
            ["registered_at"] = r.RegisteredAt.ToString("O"),
            ["tenant"] = r.Tenant,
            ["shape"] = r.Shape,
        }).ToArray());
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
        string temp = _path + ".tmp-" + Environment.ProcessId;
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(stream, new JsonObject { ["adapters"] = array });
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, _path, overwrite: true);
    }

    private static Dictionary<AdapterId, AdapterRecord> Read(string path)
    {
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException("not a JSON object");
            return (root["adapters"] as JsonArray ?? [])
                .Select(n => new AdapterRecord(AdapterId.Parse(n!["id"]!.GetValue<string>()), n["source"]!.GetValue<string>(),
                    n["version"]!.GetValue<string>(), DateTimeOffset.Parse(n["registered_at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture),
                    n["tenant"]?.GetValue<string>(), n["shape"]?.GetValue<string>()))
                .ToDictionary(r => r.Id);
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException or ArgumentException or FormatException or NullReferenceException or InvalidOperationException)
        {
            throw new InvalidDataException($"adapter registry '{path}' is unreadable: {ex.Message}", ex);
        }
    }
}
