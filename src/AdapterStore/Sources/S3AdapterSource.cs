using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;
using Serving.AdapterStore.Files;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Sources;

/// <summary>
/// Adapters in S3-compatible object storage: <c>s3://bucket/prefix</c> holds <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c>. Files are downloaded into the local disk cache under their content version
/// (<c>CACHE/s3/bucket/prefix/VERSION/</c>), written to a temporary folder and renamed into place, and re-hashed when
/// read so a changed object is never served under an old version. Every request to the store goes through one
/// resilience pipeline per source (Polly): up to three attempts with jittered backoff, each counted by a circuit breaker
/// and bounded in time by phase (<see cref="S3SourceOptions.ResponseTimeoutSeconds"/> to the response headers,
/// <see cref="S3SourceOptions.ReadIdleTimeoutSeconds"/> between body bytes). A store that refuses connections fails a
/// cold load in well under a second; one that hangs fails it after three response timeouts, after which the open breaker
/// fails every cold load at once. Adapters already cached keep serving, and the source is probed again after
/// <see cref="S3SourceOptions.BreakSeconds"/>.
/// </summary>
public sealed class S3AdapterSource(IAmazonS3 client, string cacheRoot, long maxBytes, long diskBudget, S3SourceOptions options) : IAdapterSource, IDisposable
{
    private static readonly string[] Files = ["adapter_config.json", PeftAdapterReader.WeightsFile];

    private readonly (ResiliencePipeline Pipeline, CircuitBreakerStateProvider Breaker) _resilience = BuildPipeline(TimeSpan.FromSeconds(options.BreakSeconds));
    private readonly TimeSpan _responseTimeout = TimeSpan.FromSeconds(options.ResponseTimeoutSeconds);
    private readonly TimeSpan _readIdleTimeout = TimeSpan.FromSeconds(options.ReadIdleTimeoutSeconds);

    /// <summary>The breaker's state: Closed (healthy), Open (failing fast), HalfOpen (probing), Isolated.</summary>
    public CircuitState BreakerState => _resilience.Breaker.CircuitState;

    // The breaker sits inside the retry so it counts attempts, not calls: against a hung store three timed-out attempts
    // open it within one cold load, where counting whole calls (each three timeouts long) could never gather three
    // failures inside the sampling window. Timeouts are not a strategy here: they differ by phase (StoreTimeouts).
    private static (ResiliencePipeline, CircuitBreakerStateProvider) BuildPipeline(TimeSpan breakDuration)
    {
        var breaker = new CircuitBreakerStateProvider();
        return (new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = 2,
                Delay = TimeSpan.FromMilliseconds(50),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>().Handle<TimeoutRejectedException>().Handle<IOException>()
                    .Handle<AmazonServiceException>(e => e is not AmazonS3Exception { StatusCode: HttpStatusCode.NotFound or HttpStatusCode.Forbidden }),
            })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                StateProvider = breaker,
                FailureRatio = 0.5,
                MinimumThroughput = 3,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = breakDuration,
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>().Handle<TimeoutRejectedException>().Handle<IOException>()
                    .Handle<AmazonServiceException>(e => e is not AmazonS3Exception { StatusCode: HttpStatusCode.NotFound }),
            })
            .Build(), breaker);
    }

    /// <summary>The circuit breaker rejected the call: the store failed repeatedly and is given time to recover.</summary>
    public static bool IsSourceDown(Exception ex) => ex is BrokenCircuitException;
    public static bool IsS3(string uri) => uri.StartsWith("s3://", StringComparison.Ordinal);

    public bool Handles(string uri) => IsS3(uri);

    public static S3AdapterSource Create(S3SourceOptions options, string cacheRoot, long maxBytes, long diskBudget)
    {
        // Retries and timeouts belong to the resilience pipeline, not to the SDK.
        var config = new AmazonS3Config { ForcePathStyle = options.ForcePathStyle, AuthenticationRegion = options.Region, MaxErrorRetry = 0 };
        if (!string.IsNullOrEmpty(options.ServiceUrl))
            config.ServiceURL = options.ServiceUrl;
        else
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        var client = string.IsNullOrEmpty(options.AccessKey)
            ? new AmazonS3Client(config)
            : new AmazonS3Client(new BasicAWSCredentials(options.AccessKey, options.SecretKey), config);
        return new S3AdapterSource(client, cacheRoot, maxBytes, diskBudget, options);
    }

    public static (string Bucket, string Prefix) Parse(string uri)
    {
        string rest = uri["s3://".Length..].Trim('/');
        int slash = rest.IndexOf('/');
        string bucket = slash < 0 ? rest : rest[..slash];
        string prefix = slash < 0 ? "" : rest[(slash + 1)..];
        if (bucket.Length == 0 || prefix.Split('/').Any(p => p is ".." or "."))
            throw new ArgumentException($"'{uri}' is not an s3://bucket/prefix URI");
        return (bucket, prefix);
    }

    public static bool TryParse(string uri, out (string Bucket, string Prefix) parsed)
    {
        parsed = default;
        if (!IsS3(uri))
            return false;
        try
        {
            parsed = Parse(uri);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>Downloads the adapter now (registration) and reads it from the staging folder (the cache is the server's own: trusted).</summary>
    public async Task<AdapterFiles> FetchAsync(string uri, string adapter, AdapterReadPolicy policy, CancellationToken ct)
    {
        string staging = await DownloadAsync(uri, adapter, ct).ConfigureAwait(false);
        using var files = ReadStaging(staging, policy, ct);
        string folder = Publish(staging, Folder(uri, files.Version));
        return files.MovedTo(folder);
    }

    /// <summary>
    /// The adapters under <paramref name="rootUri"/> (<c>s3://bucket/prefix</c>): each direct sub-prefix holding both
    /// PEFT files, with a fingerprint of their ETags so a changed upload is noticed without downloading it.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> ListAdaptersAsync(string rootUri, CancellationToken ct)
    {
        var (bucket, prefix) = Parse(rootUri);
        string root = prefix.Length == 0 ? "" : prefix + "/";
        var files = new Dictionary<string, SortedDictionary<string, string>>(StringComparer.Ordinal);
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = root };
        ListObjectsV2Response page;
        do
        {
            page = await _resilience.Pipeline.ExecuteAsync(async token => await StoreTimeouts.RespondWithin(
                t => client.ListObjectsV2Async(request, t), _responseTimeout, $"listing s3://{bucket}/{root}", token).ConfigureAwait(false), ct).ConfigureAwait(false);
            foreach (var o in page.S3Objects ?? [])
            {
                var parts = o.Key[root.Length..].Split('/');
                if (parts.Length == 2 && Files.Contains(parts[1]))
                {
                    if (!files.TryGetValue(parts[0], out var entry))
                        files[parts[0]] = entry = new SortedDictionary<string, string>(StringComparer.Ordinal);
                    entry[parts[1]] = o.ETag;
                }
            }

            request.ContinuationToken = page.NextContinuationToken;
        }
        while (page.IsTruncated == true);
        return files.Where(f => f.Value.Count == Files.Length).ToDictionary(f => f.Key, f => string.Join('|', f.Value.Values), StringComparer.Ordinal);
    }

    /// <summary>The local folder holding <paramref name="record"/>'s version, downloading it again if the disk cache lost it.</summary>
    public string EnsureLocal(AdapterRecord record) =>
        Load(record, AdapterReadPolicy.Trusted(maxBytes, TimeSpan.FromMinutes(10)), CancellationToken.None).Folder;

    /// <summary>
    /// The cached version's files, verified against the version; downloaded again when the cache lost them or they no
    /// longer hash to it. Objects changed in the store since registration are refused: a new upload is a new registration.
    /// </summary>
    public AdapterFiles Load(AdapterRecord record, AdapterReadPolicy policy, CancellationToken ct)
    {
        string folder = Folder(record.Source, record.Version);
        if (Files.All(f => File.Exists(Path.Combine(folder, f))))
        {
            try
            {
                var cached = AdapterFileReader.Read(folder, Trusted(policy), ct);
                if (cached.Version == record.Version)
                {
                    Directory.SetLastWriteTimeUtc(folder, DateTime.UtcNow);   // recency for the disk budget
                    return cached;
                }

                cached.Dispose();
            }
            catch (AdapterFileException)
            {
                // A damaged cache entry is fetched again below.
            }
        }

        string staging = DownloadAsync(record.Source, record.Id.Value, ct).GetAwaiter().GetResult();
        using var files = ReadStaging(staging, policy, ct);

        if (files.Version != record.Version)
        {
            Directory.Delete(staging, recursive: true);
            throw new AdapterFormatException(record.Id.Value, record.Source, null,
                $"the objects changed since registration (version {record.Version}, now {files.Version}); register the adapter again to serve the new version");
        }

        if (Directory.Exists(folder))
            Directory.Delete(folder, recursive: true);
        return files.MovedTo(Publish(staging, folder));
    }

    /// <summary>A fresh download's files; the staging folder is removed when they cannot be read.</summary>
    private static AdapterFiles ReadStaging(string staging, AdapterReadPolicy policy, CancellationToken ct)
    {
        try
        {
            return AdapterFileReader.Read(staging, Trusted(policy), ct);
        }
        catch
        {
            Directory.Delete(staging, recursive: true);
            throw;
        }
    }

    /// <summary>The server's own cache is read anywhere, with the caller's size and time limits.</summary>
    private static AdapterReadPolicy Trusted(AdapterReadPolicy policy) => AdapterReadPolicy.Trusted(policy.MaxWeightsBytes, policy.Timeout);

    /// <summary>Whether the disk cache holds <paramref name="record"/>'s version (files present; not re-hashed).</summary>
    public bool IsOnDisk(AdapterRecord record)
    {
        string folder = Folder(record.Source, record.Version);
        return Files.All(f => File.Exists(Path.Combine(folder, f)));
    }

    private string Folder(string uri, string version)
    {
        var (bucket, prefix) = Parse(uri);
        return Path.Combine([cacheRoot, "s3", bucket, .. prefix.Split('/', StringSplitOptions.RemoveEmptyEntries), version]);
    }

    private async Task<string> DownloadAsync(string uri, string adapter, CancellationToken ct)
    {
        var (bucket, prefix) = Parse(uri);
        string staging = Path.Combine(cacheRoot, "s3", ".staging-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging);
        try
        {
            foreach (string name in Files)
            {
                string key = prefix.Length == 0 ? name : prefix + "/" + name;
                string target = Path.Combine(staging, name);
                await _resilience.Pipeline.ExecuteAsync(async token =>
                {
                    using var response = await StoreTimeouts.RespondWithin(t => client.GetObjectAsync(bucket, key, t), _responseTimeout, $"s3://{bucket}/{key}", token)
                        .ConfigureAwait(false);
                    if (response.ContentLength > maxBytes)
                        throw new AdapterFormatException(adapter, name, null, $"object is {response.ContentLength} bytes, above the limit of {maxBytes}");
                    await using var file = File.Create(target);                      // a retry starts the file over
                    await StoreTimeouts.CopyWithIdleLimit(response.ResponseStream, file, _readIdleTimeout, $"s3://{bucket}/{key}", response.Dispose, token)
                        .ConfigureAwait(false);
                }, ct).ConfigureAwait(false);
            }

            return staging;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            Directory.Delete(staging, recursive: true);
            throw new FileNotFoundException($"'{uri}' has no adapter_config.json / adapter_model.safetensors ({ex.ErrorCode})", ex);
        }
        catch
        {
            Directory.Delete(staging, recursive: true);
            throw;
        }
    }

    private string Publish(string staging, string folder)
    {
        TrimDiskCache(DirectorySize(staging));
        Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
        try
        {
            Directory.Move(staging, folder);
        }
        catch (IOException) when (Directory.Exists(folder))
        {
            Directory.Delete(staging, recursive: true);   // the same version is already cached
        }

        return folder;
    }

    /// <summary>Deletes the least recently used cached versions until <paramref name="incoming"/> more bytes fit the budget.</summary>
    private void TrimDiskCache(long incoming)
    {
        string root = Path.Combine(cacheRoot, "s3");
        var versions = Directory.GetDirectories(root, "*", SearchOption.AllDirectories)
            .Where(d => !Path.GetFileName(d).StartsWith('.') && File.Exists(Path.Combine(d, PeftAdapterReader.WeightsFile)))
            .Select(d => (Folder: d, Bytes: DirectorySize(d), Used: Directory.GetLastWriteTimeUtc(d)))
            .OrderBy(v => v.Used)
            .ToList();
        long total = versions.Sum(v => v.Bytes) + incoming;
        foreach (var v in versions)
        {
            if (total <= diskBudget)
                break;
            Directory.Delete(v.Folder, recursive: true);
            total -= v.Bytes;
        }
    }

    private static long DirectorySize(string folder) => Directory.GetFiles(folder).Sum(f => new FileInfo(f).Length);

    public void Dispose() => client.Dispose();
}
