using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.Contracts;

namespace Serving.AdapterStore.Tests.Registry;

public sealed class AdapterRegistryTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-tests", "registry-" + Guid.NewGuid().ToString("N"));

    private string RegistryPath => Path.Combine(_dir, "registry.json");

    private static AdapterRecord Record(string id, string version) =>
        new(AdapterId.Parse(id), "/adapters/" + id, version, new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Put_Reopen_SameRecords()
    {
        var registry = new AdapterRegistry(RegistryPath);
        Assert.Null(registry.Put(Record("a", "v1")));
        registry.Put(Record("b", "v1"));
        Assert.Equal("v1", registry.Put(Record("a", "v2"))!.Version);
        var reopened = new AdapterRegistry(RegistryPath);
        Assert.Equal(["a", "b"], reopened.All().Select(r => r.Id.Value));
        Assert.Equal(Record("a", "v2"), reopened.Get(AdapterId.Parse("a")));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp-*"));
    }

    /// <summary>The command line's registrations (vLLM's <c>--lora-modules</c>) last for the process: served over the file's, never written.</summary>
    [Fact]
    public void Put_ProcessOnly_ServedNotWrittenAndTheFilesKeptUnderIt()
    {
        var registry = new AdapterRegistry(RegistryPath);
        registry.Put(Record("a", "v1"));
        var startup = Record("a", "v2") with { Source = "/startup/a", ProcessOnly = true };
        Assert.Equal("v1", registry.Put(startup)!.Version);
        registry.Put(Record("b", "v1") with { ProcessOnly = true });

        Assert.Equal(startup, registry.Get(AdapterId.Parse("a")));
        Assert.Equal(["a", "b"], registry.All().Select(r => r.Id.Value));
        var reopened = new AdapterRegistry(RegistryPath);
        Assert.Equal([Record("a", "v1")], reopened.All());

        registry.Put(Record("b", "v3"));                          // a run-time registration outlives the command line's
        Assert.True(registry.Remove(AdapterId.Parse("a")));     // and an unload removes both layers
        Assert.Equal([Record("b", "v3")], new AdapterRegistry(RegistryPath).All());
        Assert.Equal([Record("b", "v3")], registry.All());
    }

    private static AdapterRecord Owned(string id, string? tenant) => Record(id, "v1") with { Tenant = tenant };

    [Fact]
    public void Put_TenantAtItsLimit_NewNameRefusedReplacementAndOthersNot()
    {
        var registry = new AdapterRegistry(RegistryPath);
        registry.Put(Owned("a1", "a"), tenantLimit: 2);
        registry.Put(Owned("a2", "a"), tenantLimit: 2);
        var refused = Assert.Throws<AdapterStoreException>(() => registry.Put(Owned("a3", "a"), tenantLimit: 2));
        Assert.Equal(AdapterStoreFailure.QuotaExceeded, refused.Failure);
        Assert.Contains("tenant 'a'", refused.Message, StringComparison.Ordinal);
        Assert.Throws<AdapterStoreException>(() => registry.CheckRoomFor("a", AdapterId.Parse("a3"), 2));
        registry.CheckRoomFor("a", AdapterId.Parse("a1"), 2);                         // a replacement needs no room
        Assert.NotNull(registry.Put(Owned("a1", "a") with { Version = "v2" }, tenantLimit: 2));
        registry.Put(Owned("b1", "b"), tenantLimit: 2);                               // another tenant has its own count
        registry.Put(Owned("shared", null));                                           // no limit given: admins' registrations
        Assert.True(registry.Remove(AdapterId.Parse("a2")));
        registry.Put(Owned("a3", "a"), tenantLimit: 2);
        Assert.Equal(["a1", "a3", "b1", "shared"], new AdapterRegistry(RegistryPath).All().Select(r => r.Id.Value));
    }

    [Fact]
    public async Task Put_ConcurrentRegistrationsPastTheLimit_ExactlyTheLimitSucceed()
    {
        var registry = new AdapterRegistry(RegistryPath);
        int succeeded = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 24), new ParallelOptions { MaxDegreeOfParallelism = 8 }, (i, _) =>
        {
            try
            {
                registry.Put(Owned("n" + i, "a"), tenantLimit: 5);
                Interlocked.Increment(ref succeeded);
            }
            catch (AdapterStoreException ex) when (ex.Failure == AdapterStoreFailure.QuotaExceeded)
            {
            }

            return ValueTask.CompletedTask;
        });
        Assert.Equal(5, succeeded);
        Assert.Equal(5, registry.All().Count);
    }

    [Fact]
    public void Remove_Persists()
    {
        var registry = new AdapterRegistry(RegistryPath);
        registry.Put(Record("a", "v1"));
        Assert.True(registry.Remove(AdapterId.Parse("a")));
        Assert.False(registry.Remove(AdapterId.Parse("a")));
        Assert.Empty(new AdapterRegistry(RegistryPath).All());
    }

    [Fact]
    public void Open_CorruptFile_ClearError()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(RegistryPath, "{\"adapters\": [{\"id\": \"../x\"}]}");
        Assert.Contains(RegistryPath, Assert.Throws<InvalidDataException>(() => new AdapterRegistry(RegistryPath)).Message);
    }

    [Fact]
    public void Catalog_RegistryWinsAndLocalVersionFollowsFileChanges()
    {
        string store = Path.Combine(_dir, "store");
        string adapter = Path.Combine(store, "local");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), "{}");
        File.WriteAllBytes(Path.Combine(adapter, "adapter_model.safetensors"), [1, 2, 3]);
        var registry = new AdapterRegistry(null);
        var catalog = new AdapterCatalog(new LocalFolderAdapterSource(store), registry);
        string v1 = catalog.Resolve(AdapterId.Parse("local"))!.Version;
        File.WriteAllBytes(Path.Combine(adapter, "adapter_model.safetensors"), [1, 2, 3, 4]);
        string v2 = catalog.Resolve(AdapterId.Parse("local"))!.Version;
        Assert.NotEqual(v1, v2);
        registry.Put(Record("local", "registered"));
        Assert.Equal("registered", catalog.Resolve(AdapterId.Parse("local"))!.Version);
        Assert.Equal(["local"], catalog.List().Select(i => i.Value));
        Assert.Null(catalog.Resolve(AdapterId.Parse("absent")));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
