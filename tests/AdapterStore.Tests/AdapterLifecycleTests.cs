using Serving.AdapterStore.Files;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Configuration;

namespace Serving.AdapterStore.Tests;

/// <summary>The lifecycle facade on real folders: its rules, and every refusal as an <see cref="AdapterStoreException"/> of the right kind.</summary>
public sealed class AdapterLifecycleTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "lifecycle-" + Guid.NewGuid().ToString("N"));
    private readonly string _model;
    private readonly AdapterLifecycle _lifecycle;
    private readonly AdapterStoreOptions _options = new();

    public AdapterLifecycleTests()
    {
        _model = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 4 });
        var catalog = new AdapterCatalog(null, new AdapterRegistry(Path.Combine(_root, "registry.json")));
        _lifecycle = new AdapterLifecycle(catalog, new AdapterSourceSet([new LocalPathAdapterSource()]), _options,
            ModelConfig.Load(Path.Combine(_model, "config.json")), ["base-model", "base-alias"], TimeProvider.System);
    }

    private string Adapter(string name, int rank = 4)
    {
        string dir = Path.Combine(_root, name);
        SyntheticAdapterWriter.Write(dir, _model, rank, 8, ["q_proj", "v_proj"], 3);
        return dir;
    }

    private AdapterReadPolicy Trusted => AdapterReadPolicy.Trusted(_options.MaxAdapterBytes, _options.ReadTimeout);

    [Fact]
    public async Task RegisterAsync_ValidFolder_RecordsTheContentVersionAndReplacesOnASecondRegistration()
    {
        var id = _lifecycle.ParseNewName("clinical");
        var (first, none) = await _lifecycle.RegisterAsync(id, Adapter("v1"), Trusted, "tenant-a", CancellationToken.None);
        var (second, previous) = await _lifecycle.RegisterAsync(id, Adapter("v2", rank: 8), Trusted, "tenant-a", CancellationToken.None);

        Assert.Null(none);
        Assert.Equal(first, previous);
        Assert.NotEqual(first.Version, second.Version);
        Assert.Equal(("tenant-a", second.Version), (_lifecycle.Catalog.Resolve(id)!.Tenant, _lifecycle.Catalog.Resolve(id)!.Version));
        var (weights, version) = _lifecycle.ReadWeights(second, CancellationToken.None);
        Assert.Equal(second.Version, version);
        Assert.Equal(8, weights.MaxRank);
    }

    [Theory]
    [InlineData(null, "is required")]
    [InlineData("base-model", "is the base model's id")]
    [InlineData("AUTO", "is reserved")]
    [InlineData("Base-Model", "in another letter case")]
    public void ParseNewName_BrokenRule_BadRequestAboutTheName(string? name, string rule)
    {
        var ex = Assert.Throws<AdapterStoreException>(() => _lifecycle.ParseNewName(name));

        Assert.Equal((AdapterStoreFailure.BadRequest, AdapterStoreSubject.Name), (ex.Failure, ex.Subject));
        Assert.Contains(rule, ex.Message);
    }

    [Fact]
    public async Task ParseNewName_ExistingNameInAnotherCase_BadRequest()
    {
        await _lifecycle.RegisterAsync(_lifecycle.ParseNewName("Clinical"), Adapter("a"), Trusted, null, CancellationToken.None);

        var ex = Assert.Throws<AdapterStoreException>(() => _lifecycle.ParseNewName("clinical"));

        Assert.Contains("differs from the existing adapter 'Clinical' only in letter case", ex.Message);
    }

    [Fact]
    public void CheckPath_ControlCharacter_BadRequestAboutThePath()
    {
        var ex = Assert.Throws<AdapterStoreException>(() => AdapterLifecycle.CheckPath("/adapters/a\u0001b"));

        Assert.Equal((AdapterStoreFailure.BadRequest, AdapterStoreSubject.Path), (ex.Failure, ex.Subject));
    }

    [Fact]
    public async Task RegisterAsync_MissingFolderUnderAConfinedPolicy_NotFoundThatDoesNotSayWhichOfMissingOrOutside()
    {
        string missing = Path.Combine(_root, "nowhere");
        var policy = AdapterReadPolicy.ConfinedTo([_root], _options.MaxAdapterBytes, _options.ReadTimeout);

        var ex = await Assert.ThrowsAsync<AdapterStoreException>(() => _lifecycle.RegisterAsync(_lifecycle.ParseNewName("x"), missing, policy, "t", CancellationToken.None));

        Assert.Equal((AdapterStoreFailure.NotFound, AdapterStoreSubject.Path), (ex.Failure, ex.Subject));
        Assert.Equal($"adapter folder '{missing}' does not exist or is outside the sources this key may register adapters from", ex.Message);
    }

    [Fact]
    public async Task RegisterAsync_RankAboveTheLimit_InvalidAdapterAndNothingRegistered()
    {
        string dir = Adapter("big", rank: _options.MaxRank * 2);

        var ex = await Assert.ThrowsAsync<AdapterStoreException>(() => _lifecycle.RegisterAsync(_lifecycle.ParseNewName("big"), dir, Trusted, null, CancellationToken.None));

        Assert.Equal(AdapterStoreFailure.InvalidAdapter, ex.Failure);
        Assert.Contains("rank", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Null(_lifecycle.Catalog.Resolve(AdapterId.Parse("big")));
    }

    [Fact]
    public void Unregister_NotRegistered_NotFoundAboutTheName()
    {
        var ex = Assert.Throws<AdapterStoreException>(() => _lifecycle.Unregister(AdapterId.Parse("ghost")));

        Assert.Equal((AdapterStoreFailure.NotFound, AdapterStoreSubject.Name), (ex.Failure, ex.Subject));
    }

    [Fact]
    public async Task ReadWeights_FolderDeletedAfterRegistration_TypedErrorNotAnIoException()
    {
        string dir = Adapter("gone");
        var (record, _) = await _lifecycle.RegisterAsync(_lifecycle.ParseNewName("gone"), dir, Trusted, null, CancellationToken.None);
        Directory.Delete(dir, recursive: true);

        var ex = Assert.Throws<AdapterStoreException>(() => _lifecycle.ReadWeights(record, CancellationToken.None));

        Assert.NotEqual(AdapterStoreFailure.BadRequest, ex.Failure);
    }

    [Fact]
    public async Task ReadWeights_FolderRewrittenInPlaceWithAnotherShape_InvalidAdapterNamingTheChange()
    {
        string dir = Adapter("changing");
        var (record, _) = await _lifecycle.RegisterAsync(_lifecycle.ParseNewName("changing"), dir, Trusted, null, CancellationToken.None);
        SyntheticAdapterWriter.Write(dir, _model, 8, 16, ["q_proj", "v_proj"], 3);

        var ex = Assert.Throws<AdapterStoreException>(() => _lifecycle.ReadWeights(record, CancellationToken.None));

        Assert.Equal(AdapterStoreFailure.InvalidAdapter, ex.Failure);
        Assert.Contains("changed in place", ex.Message);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
