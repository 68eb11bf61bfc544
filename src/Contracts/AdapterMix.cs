namespace Serving.Contracts;

/// <summary>
/// The adapters one request runs with: none (base model), one adapter at weight 1, or a weighted mix
/// (<c>y += Σ wᵢ · scaleᵢ · Bᵢ·(Aᵢ·x)</c>). Immutable and validated: distinct ids, finite positive weights (at most
/// 100 each), at most <see cref="MaxAdapters"/> entries.
/// </summary>
public sealed record AdapterMix
{
    public const int MaxAdapters = 8;
    public static readonly AdapterMix None = new([]);

    private AdapterMix(IReadOnlyList<(AdapterId Id, float Weight)> entries) => Entries = entries;

    public IReadOnlyList<(AdapterId Id, float Weight)> Entries { get; }
    public bool IsBaseModel => Entries.Count == 0;

    public static AdapterMix Single(AdapterId id) => new([(id, 1f)]);

    public static AdapterMix Create(IReadOnlyList<(AdapterId Id, float Weight)> entries)
    {
        if (entries.Count > MaxAdapters)
            throw new ArgumentException($"at most {MaxAdapters} adapters may be mixed in one request");
        if (entries.Select(e => e.Id).Distinct().Count() != entries.Count)
            throw new ArgumentException("an adapter appears twice in the mix");
        foreach (var (id, weight) in entries)
            if (!float.IsFinite(weight) || weight <= 0 || weight > 100)
                throw new ArgumentException($"weight {weight} for adapter '{id}' must be finite, positive and at most 100");
        return entries.Count == 0 ? None : new AdapterMix(entries.ToArray());
    }

    public override string ToString() => IsBaseModel ? "base" : string.Join("+", Entries.Select(e => $"{e.Id}×{e.Weight}"));
}
