using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Tiers;
using Serving.Batching;
using Serving.Contracts;
using Serving.Engine.Routing;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;

namespace Serving.Runtime.Routing;

/// <summary>
/// <c>model: "auto"</c>: picks or mixes adapters from the prompt itself with Arrow routing. Each candidate version's
/// prototypes are computed once (from its weights in the host tier) and kept by version; the prompt's projection inputs
/// come from a base-model pass over the first <see cref="RoutingOptions.Layers"/> layers beside the engine loop.
/// Candidates: those the request names, else every adapter the caller may use.
/// </summary>
public sealed class AdapterRouter(ModelHost host, EngineWorker worker, Serving.Runtime.Observability.ServingMetrics metrics, IOptions<RoutingOptions> options)
{
    private readonly ConcurrentDictionary<AdapterVersionKey, Task<ArrowPrototypes>> _prototypes = new();
    private readonly ConcurrentDictionary<(AdapterVersionKey, int Layers), float[]> _centroids = new();

    public const string AutoModel = AdapterId.Auto;

    /// <summary>256 example prompts fit in far less.</summary>
    private const long MaxExamplesBytes = 4 << 20;

    /// <summary>Example prompts an adapter may ship for the centroid router: JSONL lines with a "prompt" field.</summary>
    public const string ExamplesFile = AdapterFileNames.RoutingExamples;

    /// <summary>Computes the prototypes of <paramref name="record"/>'s version now, so the first routed request does not wait for them.</summary>
    public Task WarmAsync(AdapterRecord record) => PrototypesAsync(record);

    /// <summary>Prototypes of <paramref name="record"/>'s version (computed on first use; registration warms it).</summary>
    internal Task<ArrowPrototypes> PrototypesAsync(AdapterRecord record)
    {
        var key = new AdapterVersionKey(record.Id, record.Version);
        var task = _prototypes.GetOrAdd(key, _ => worker.ReadAdapterAsync(record).ContinueWith(t => ArrowPrototypes.Compute(t.Result), TaskScheduler.Default));
        if (task.IsFaulted)
            _prototypes.TryRemove(KeyValuePair.Create(key, task));   // report this failure, retry on the next request
        return task;
    }

    /// <summary>Chooses the adapters (and weights) for one prompt.</summary>
    /// <param name="prompt">The prompt's token ids.</param>
    /// <param name="mayUse">Whether the caller may use an adapter: limits the candidates to those.</param>
    /// <param name="candidateIds">Adapters to choose between; null = every adapter the caller may use.</param>
    /// <param name="topK">How many to mix (default from options).</param>
    /// <param name="temperature">Softmax temperature (default from options).</param>
    /// <param name="ct">Request cancellation.</param>
    /// <param name="method"><c>arrow</c> (default: every adapter) or <c>centroid</c> (adapters that ship <see cref="ExamplesFile"/>).</param>
    public async Task<Generation.PinnedAdapters> RouteAsync(IReadOnlyList<int> prompt, Func<AdapterRecord, bool> mayUse, IReadOnlyList<string>? candidateIds, int? topK, double? temperature,
        CancellationToken ct, string? method = null)
    {
        var o = options.Value;
        int k = topK ?? o.TopK;
        double t = temperature ?? o.Temperature;
        if (k is < 1 or > AdapterMix.MaxAdapters)
            throw Invalid("routing.top_k", $"must be within 1..{AdapterMix.MaxAdapters}");
        if (!(t > 0) || !double.IsFinite(t))
            throw Invalid("routing.temperature", "must be positive");
        var records = Candidates(mayUse, candidateIds);
        int layers = o.Layers == 0 ? host.Model.Config.NumLayers : o.Layers;
        if (method is "centroid")
            return Record(records, await Task.Run(() => RouteByCentroid(records, prompt, layers, Math.Min(k, records.Count), t), ct));
        if (method is not (null or "arrow"))
            throw Invalid("routing.method", "must be 'arrow' or 'centroid'");
        var prototypes = new List<ArrowPrototypes>();
        try
        {
            foreach (var r in records)
                prototypes.Add(await PrototypesAsync(r).WaitAsync(ct));
        }
        catch (AggregateException ex) when (ex.InnerException is AdapterStore.AdapterStoreException store)
        {
            throw new RequestFailedException(store.Failure == AdapterStore.AdapterStoreFailure.Unavailable ? RequestFailure.Unavailable : RequestFailure.Unprocessable,
                store.Message, "model");
        }

        var inputs = await Task.Run(() => host.Model.Model.CaptureProjectionInputs(prompt, layers), ct);
        var (chosen, _) = ArrowRouter.Route(prototypes, inputs, prompt.Count, Math.Min(k, records.Count), t);
        return Record(records, chosen);
    }

    /// <summary>The chosen candidates, pinned to the versions the candidates were resolved to.</summary>
    private Generation.PinnedAdapters Record(List<AdapterRecord> records, IReadOnlyList<(int Candidate, float Weight)> chosen)
    {
        foreach (var (c, _) in chosen)
            metrics.RoutingDecisions.Add(1, Observability.ServingMetrics.Tag("adapter", records[c].Id.Value));
        return new Generation.PinnedAdapters(AdapterMix.Create(chosen.Select(c => (records[c.Candidate].Id, c.Weight)).ToList()), chosen.Select(c => records[c.Candidate]));
    }

    private IReadOnlyList<(int Candidate, float Weight)> RouteByCentroid(List<AdapterRecord> records, IReadOnlyList<int> prompt, int layers, int k, double t)
    {
        var centroids = records.Select(r => _centroids.GetOrAdd((new AdapterVersionKey(r.Id, r.Version), layers), _ => Centroid(r, layers))).ToList();
        return CentroidRouter.Route(centroids, Pooled(prompt, layers), k, t).Chosen;
    }

    /// <summary>Mean-pooled input of the last routed layer's attention for one prompt.</summary>
    private float[] Pooled(IReadOnlyList<int> prompt, int layers)
    {
        var inputs = host.Model.Model.CaptureProjectionInputs(prompt, layers);
        return CentroidRouter.Pool(inputs[(Math.Min(layers, host.Model.Config.NumLayers) - 1, Serving.Contracts.Lora.LoraTarget.Q)], prompt.Count);
    }

    private float[] Centroid(AdapterRecord record, int layers)
    {
        byte[]? examples;
        try
        {
            examples = host.Lifecycle.ReadOptionalFile(record, ExamplesFile, MaxExamplesBytes);
        }
        catch (AdapterStoreException ex)
        {
            throw new RequestFailedException(RequestFailure.Unprocessable, $"adapter '{record.Id}': {ExamplesFile} {ex.Message}", "routing.method");
        }

        if (examples is null)
            throw new RequestFailedException(RequestFailure.Unprocessable, $"adapter '{record.Id}' ships no {ExamplesFile}, which the centroid router needs", "routing.method");
        var prompts = new List<int[]>();
        var lines = System.Text.Encoding.UTF8.GetString(examples).Split('\n');
        foreach (string line in lines.Where(l => !string.IsNullOrWhiteSpace(l)).Take(256))
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(line);
                prompts.Add(host.Model.Tokenizer.Encode(doc.RootElement.GetProperty("prompt").GetString() ?? ""));
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new RequestFailedException(RequestFailure.Unprocessable, $"adapter '{record.Id}': {ExamplesFile} lines must be {{\"prompt\": string}} (line {prompts.Count + 1} is not)", "routing.method");
            }
        }

        if (prompts.Count == 0 || prompts.Any(p => p.Length == 0))
            throw new RequestFailedException(RequestFailure.Unprocessable, $"adapter '{record.Id}': {ExamplesFile} has no usable prompts", "routing.method");
        return CentroidRouter.Centroid(prompts.Select(p => Pooled(p, layers)).ToList());
    }

    private List<AdapterRecord> Candidates(Func<AdapterRecord, bool> mayUse, IReadOnlyList<string>? ids)
    {
        if (ids is { Count: > 0 })
        {
            var named = new List<AdapterRecord>();
            foreach (string text in ids.Distinct())
            {
                if (!AdapterId.TryParse(text, out var id, out string? error))
                    throw Invalid("routing.candidates", error!);
                var record = host.Adapters.Resolve(id) ?? throw new RequestFailedException(RequestFailure.NotFound, $"The adapter '{text}' does not exist.", "routing.candidates");
                if (!mayUse(record))
                    throw new RequestFailedException(RequestFailure.Forbidden, $"The adapter '{text}' belongs to another tenant.", "routing.candidates");
                named.Add(record);
            }

            return named;
        }

        var visible = host.Adapters.List().Select(host.Adapters.Resolve).OfType<AdapterRecord>().Where(mayUse).ToList();
        return visible.Count > 0 ? visible
            : throw new RequestFailedException(RequestFailure.NotFound, "model 'auto' found no adapters this caller may use; register one or name candidates", "model");
    }

    private static RequestFailedException Invalid(string field, string problem) => new(RequestFailure.Invalid, $"'{field}' {problem}", field);
}
