using Serving.Contracts;

namespace Serving.Batching;

/// <summary>
/// Decides which waiting requests may join the running batch this step, by policy. Pure bookkeeping over
/// <see cref="AdapterMix"/> values (no tensors); device slots and KV rows are checked by the engine loop afterwards.
/// </summary>
internal static class AdmissionPlanner
{
    /// <summary>
    /// Indices into <paramref name="waiting"/> (oldest first) that may be admitted now, in order.
    /// PerAdapter: while anything runs only the running set's requests; when idle, the oldest request's set.
    /// </summary>
    public static IReadOnlyList<int> Candidates(AdmissionPolicy policy, IReadOnlyList<AdapterMix> running, IReadOnlyList<AdapterMix> waiting)
    {
        if (policy == AdmissionPolicy.Continuous || waiting.Count == 0)
            return Enumerable.Range(0, waiting.Count).ToArray();
        var batchSet = running.Count > 0 ? running[0] : waiting[0];
        return Enumerable.Range(0, waiting.Count).Where(i => SameSet(waiting[i], batchSet)).ToArray();
    }

    /// <summary>Same adapters with the same weights, in any order.</summary>
    public static bool SameSet(AdapterMix a, AdapterMix b) =>
        a.Entries.Count == b.Entries.Count && a.Entries.OrderBy(e => e.Id.Value, StringComparer.Ordinal).SequenceEqual(b.Entries.OrderBy(e => e.Id.Value, StringComparer.Ordinal));
}
