using System.Diagnostics;
using System.Security.Cryptography;
using Serving.AdapterStore.Files;

namespace Serving.AdapterStore.Tests.Files;

public sealed class AdapterFileReaderTests : IDisposable
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "reader-" + Guid.NewGuid().ToString("N"));
    private readonly string _mine, _theirs;

    public AdapterFileReaderTests()
    {
        _mine = Adapter(Path.Combine(_root, "mine", "one"), "{\"mine\": 1}", [1, 2, 3]);
        _theirs = Adapter(Path.Combine(_root, "theirs", "one"), "{\"theirs\": 1}", [4, 5, 6]);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static string Adapter(string dir, string config, byte[] weights)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, AdapterFileReader.ConfigFile), config);
        File.WriteAllBytes(Path.Combine(dir, AdapterFileReader.WeightsFile), weights);
        return dir;
    }

    private AdapterReadPolicy Mine(long maxBytes = 1 << 20) => AdapterReadPolicy.ConfinedTo([Path.Combine(_root, "mine") + "/"], maxBytes, Minute);

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    [Fact]
    public void Read_PlainFolder_VersionIsTheHashOfTheBytesRead()
    {
        using var files = AdapterFileReader.Read(_mine, Mine(), CancellationToken.None);

        Assert.Equal("{\"mine\": 1}"u8.ToArray(), files.Config);
        Assert.Equal([1, 2, 3], files.Weights.ToArray());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData([.. files.Config, .. files.Weights]))[..16], files.Version);
    }

    [Fact]
    public void Dispose_WeightsReadAfterwards_ThrowsAndTheBufferIsCleared()
    {
        var files = AdapterFileReader.Read(_mine, Mine(), CancellationToken.None);
        string version = files.Version;
        var buffer = System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(in files.Weights[0], 3);

        files.Dispose();
        files.Dispose();

        Assert.Equal([0, 0, 0], buffer.ToArray());
        Assert.Throws<ObjectDisposedException>(() => files.Weights.Length);
        Assert.Equal(version, files.Version);
    }

    [Fact]
    public void MovedTo_OtherFolder_SameBytesAndVersion_OriginalReleased()
    {
        var files = AdapterFileReader.Read(_mine, Mine(), CancellationToken.None);
        string version = files.Version;

        using var moved = files.MovedTo("/elsewhere");
        files.Dispose();

        Assert.Equal("/elsewhere", moved.Folder);
        Assert.Equal(version, moved.Version);
        Assert.Equal([1, 2, 3], moved.Weights.ToArray());
        Assert.Throws<ObjectDisposedException>(() => files.Weights.Length);
        Assert.Throws<ObjectDisposedException>(() => files.MovedTo("/again"));
    }

    [Fact]
    public void Read_FolderLinkOutOfTheRoots_NotFoundLikeAMissingOne()
    {
        string link = Path.Combine(_root, "mine", "link");
        Directory.CreateSymbolicLink(link, _theirs);

        var linked = Assert.Throws<AdapterFileException>(() => AdapterFileReader.Read(link, Mine(), CancellationToken.None));
        var missing = Assert.Throws<AdapterFileException>(() => AdapterFileReader.Read(Path.Combine(_root, "mine", "none"), Mine(), CancellationToken.None));

        Assert.Equal(AdapterFileProblem.NotFound, linked.Problem);
        Assert.Equal(missing.Message, linked.Message);
        Assert.Equal(missing.File, linked.File);
    }

    [Fact]
    public void Read_FileLinkOutOfTheRoots_NotFound_LinkInsideReads()
    {
        string dir = Adapter(Path.Combine(_root, "mine", "mixed"), "{}", [9]);
        File.Delete(Path.Combine(dir, AdapterFileReader.WeightsFile));
        File.CreateSymbolicLink(Path.Combine(dir, AdapterFileReader.WeightsFile), Path.Combine(_theirs, AdapterFileReader.WeightsFile));
        string inside = Path.Combine(_root, "mine", "inside");
        Directory.CreateSymbolicLink(inside, _mine);

        var ex = Assert.Throws<AdapterFileException>(() => AdapterFileReader.Read(dir, Mine(), CancellationToken.None));

        Assert.Equal((AdapterFileProblem.NotFound, AdapterFileReader.WeightsFile), (ex.Problem, ex.File));
        Assert.Equal([1, 2, 3], AdapterFileReader.Read(inside, Mine(), CancellationToken.None).Weights.ToArray());
        Assert.Equal([4, 5, 6], AdapterFileReader.Read(dir, AdapterReadPolicy.Trusted(1 << 20, Minute), CancellationToken.None).Weights.ToArray());
    }

    [Fact]
    public async Task Read_Fifo_RefusedWithoutBlocking()
    {
        string dir = Adapter(Path.Combine(_root, "mine", "fifo"), "{}", []);
        File.Delete(Path.Combine(dir, AdapterFileReader.WeightsFile));
        Run("mkfifo", Path.Combine(dir, AdapterFileReader.WeightsFile));

        var read = Task.Run(() => AdapterFileReader.Read(dir, Mine(), CancellationToken.None));

        Assert.Same(read, await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(10))));
        var ex = await Assert.ThrowsAsync<AdapterFileException>(() => read);
        Assert.Equal(AdapterFileProblem.Refused, ex.Problem);
        Assert.Contains("FIFO", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_LinkToDevZeroTrusted_RefusedAsACharacterDevice()
    {
        string dir = Adapter(Path.Combine(_root, "admin", "zero"), "{}", []);
        File.Delete(Path.Combine(dir, AdapterFileReader.WeightsFile));
        File.CreateSymbolicLink(Path.Combine(dir, AdapterFileReader.WeightsFile), "/dev/zero");

        var ex = Assert.Throws<AdapterFileException>(() => AdapterFileReader.Read(dir, AdapterReadPolicy.Trusted(1 << 30, Minute), CancellationToken.None));

        Assert.Contains("character device", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_SparseFileAboveTheLimit_RefusedFromItsStatus()
    {
        string dir = Adapter(Path.Combine(_root, "mine", "sparse"), "{}", []);
        using (var s = new FileStream(Path.Combine(dir, AdapterFileReader.WeightsFile), FileMode.Create))
            s.SetLength(1L << 40);

        var ex = Assert.Throws<AdapterFileException>(() => AdapterFileReader.Read(dir, Mine(512L << 20), CancellationToken.None));

        Assert.Equal(AdapterFileProblem.Refused, ex.Problem);
        Assert.Contains($"is {1L << 40} bytes, above the configured limit of {512L << 20}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_HardLinkedFileConfined_Refused_TrustedReads()
    {
        string dir = Adapter(Path.Combine(_root, "mine", "hard"), "{}", []);
        File.Delete(Path.Combine(dir, AdapterFileReader.WeightsFile));
        Run("ln", Path.Combine(_theirs, AdapterFileReader.WeightsFile), Path.Combine(dir, AdapterFileReader.WeightsFile));

        var ex = Assert.Throws<AdapterFileException>(() => AdapterFileReader.Read(dir, Mine(), CancellationToken.None));

        Assert.Contains("2 hard links", ex.Message, StringComparison.Ordinal);
        Assert.Equal([4, 5, 6], AdapterFileReader.Read(dir, AdapterReadPolicy.Trusted(1 << 20, Minute), CancellationToken.None).Weights.ToArray());
    }

    [Fact]
    public void Read_Cancelled_Throws()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => AdapterFileReader.Read(_mine, Mine(), cancelled.Token));
    }

    [Fact]
    public void Status_FileRewrittenWithTheSameSizeAndTimestamp_Differs()
    {
        string weights = Path.Combine(_mine, AdapterFileReader.WeightsFile);
        var before = AdapterFileReader.Status(_mine, Mine());
        var written = File.GetLastWriteTimeUtc(weights);
        Thread.Sleep(20);
        File.WriteAllBytes(weights, [7, 8, 9]);
        File.SetLastWriteTimeUtc(weights, written);

        var after = AdapterFileReader.Status(_mine, Mine());

        Assert.Equal(before.Weights.Size, after.Weights.Size);
        Assert.NotEqual(before.Weights, after.Weights);
    }

    [Theory]
    [InlineData("file:///srv/tenants/c/%2e%2e/b/secret", "/srv/tenants/b/secret")]
    [InlineData("file:///srv/tenants/c/%2E%2E%2Fb", "/srv/tenants/b")]
    [InlineData("file:///srv/tenants/c/..%2fb", "/srv/tenants/b")]
    [InlineData("file://localhost/srv/a", "/srv/a")]
    [InlineData("/srv/tenants/c/../b", "/srv/tenants/b")]
    public void LocalAdapterPath_EncodedUri_DecodedAndNormalisedBeforeAnyComparison(string uri, string expected) =>
        Assert.Equal(expected, LocalAdapterPath.TryFromUri(uri));

    [Theory]
    [InlineData("file://evil.example/srv/a")]
    [InlineData("/srv/a\0/b")]
    [InlineData("file:///srv/a%00b")]
    [InlineData("s3://bucket/a")]
    public void LocalAdapterPath_RemoteHostNulOrOtherScheme_Null(string uri) => Assert.Null(LocalAdapterPath.TryFromUri(uri));
}
