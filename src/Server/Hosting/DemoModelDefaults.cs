using System.Diagnostics;
using Serving.Authoring.Demo;
using Serving.Contracts;
using Serving.Runtime.Hosting;

namespace Serving.Server.Hosting;

/// <summary>
/// The server's default when no <c>--model</c> is given: the demo model (random weights) and, when no adapter store is
/// configured, the demo adapters. What is quick to make (the model, the random-weight adapters) is generated before the
/// server listens; the trained adapters are trained afterwards, one after another, each served as soon as it is written.
/// </summary>
internal sealed class DemoModelDefaults(ILogger<DemoModelDefaults> logger, TimeProvider time) : IDefaultModel
{
    /// <summary>Steps between two progress lines of one adapter's training.</summary>
    private const int ProgressEvery = 20;

    public DefaultModelFolders Ensure(string cacheRoot, bool adaptersConfigured)
    {
        var clock = Stopwatch.StartNew();
        string path = DemoModel.Ensure(cacheRoot, out bool generated);
        logger.LogWarning("No --model given: serving the built-in demo model at {Path} ({State}). Its weights are RANDOM: output is meaningless text.",
            path, generated ? $"generated now in {clock.Elapsed.TotalSeconds:F1} s" : "generated earlier");
        string? adapterRoot = null;
        if (!adaptersConfigured)
        {
            adapterRoot = DemoAdapters.EnsureRandom(cacheRoot, path);
            var missing = DemoAdapters.Missing(adapterRoot);
            logger.LogWarning("Serving the demo adapters from {Root}: {Random} have random weights; {Trained} are trained on the demo model for small synthetic tasks (try model \"auto\"){Pending}.",
                adapterRoot, string.Join(", ", DemoAdapters.All.Select(a => a.Id)), string.Join(", ", DemoAdapters.Trained.Select(a => $"{a.Id} ({a.Domain})")),
                missing.Count == 0 ? "" : $"; {missing.Count} of them are trained in the background after start-up and served as each finishes");
        }

        return new DefaultModelFolders(path, DemoModel.Name, adapterRoot);
    }

    public Task PrepareAdaptersAsync(DefaultModelFolders folders, PreparingAdapters preparing, CancellationToken stopping)
    {
        string root = folders.AdapterRoot ?? throw new ArgumentException("the demo adapters need a store root", nameof(folders));
        var missing = DemoAdapters.Missing(root);
        foreach (var (id, _) in missing)
            preparing.Expect(AdapterId.Parse(id), null);
        return missing.Count == 0 ? Task.CompletedTask : Task.Run(() => Train(folders.ModelPath, root, missing, preparing, stopping), stopping);
    }

    private void Train(string modelPath, string root, IReadOnlyList<(string Id, string Domain)> missing, PreparingAdapters preparing, CancellationToken stopping)
    {
        TimeSpan? perStep = null;
        var clock = Stopwatch.StartNew();
        int current = -1;
        double firstLoss = double.NaN, lastLoss = double.NaN;
        DemoAdapterTraining.Run(modelPath, root, [.. missing.Select(m => m.Id)], (id, i, step, steps, loss) =>
        {
            stopping.ThrowIfCancellationRequested();
            if (i != current)
            {
                current = i;
                clock.Restart();
                firstLoss = loss;
                logger.LogInformation("Training demo adapter {Id} ({Index} of {Count}, {Domain}, {Steps} steps){Estimate}; until it is ready, requests for it get 503 with Retry-After",
                    id, i + 1, missing.Count, missing[i].Domain, steps, perStep is { } known ? $", about {(known * steps).TotalSeconds:F0} s" : "");
            }

            lastLoss = loss;
            perStep = clock.Elapsed / step;
            var now = time.GetUtcNow();
            for (int j = i; j < missing.Count; j++)   // this adapter's remaining steps, then every later adapter's
                preparing.Expect(AdapterId.Parse(missing[j].Id), now + perStep.Value * (steps - step + (j - i) * steps));
            if (step % ProgressEvery == 0 && step < steps)
                logger.LogInformation("Training demo adapter {Id}: step {Step}/{Steps}, loss {Loss:F3}, about {Left:F0} s left ({After} more after it)",
                    id, step, steps, loss, (perStep.Value * (steps - step)).TotalSeconds, missing.Count - i - 1);
        }, id =>
        {
            preparing.Done(AdapterId.Parse(id));
            logger.LogInformation("Demo adapter {Id} is ready and served: trained in {Seconds:F1} s (loss {First:F3} → {Last:F3})",
                id, clock.Elapsed.TotalSeconds, firstLoss, lastLoss);
        });
    }
}
