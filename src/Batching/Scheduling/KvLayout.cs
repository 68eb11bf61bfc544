namespace Serving.Batching.Scheduling;

/// <summary>
/// The shape of every sequence's KV block tables: the block size and, per KV group (the engine's
/// <c>KvCacheGroups</c>), the group's window — null where its layers attend to the whole context. A sliding group's
/// blocks wholly behind the window of a sequence's next token are never read again and go back to the pool.
/// </summary>
/// <param name="BlockSize">Token positions per block.</param>
/// <param name="Windows">Per group, positions a token attends to (itself included), or null.</param>
public sealed record KvLayout(int BlockSize, IReadOnlyList<int?> Windows)
{
    /// <summary>One whole-context group: every block a sequence fills stays until it ends.</summary>
    public static KvLayout Single(int blockSize) => new(blockSize, [null]);

    public int GroupCount => Windows.Count;

    /// <summary>Blocks that hold <paramref name="tokens"/> positions from position 0.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>The first block of group <paramref name="group"/> a token at <paramref name="position"/> still reads.</summary>
    public int FirstHeldBlock(int group, int position) => Windows[group] is int w ? Math.Max(0, position - w + 1) / BlockSize : 0;

    /// <summary>
    /// The most blocks, over all groups, that one sequence of up to <paramref name="length"/> positions holds while it is fed
    /// at most <paramref name="chunk"/> tokens a step: every block in a whole-context group; in a sliding group those
    /// spanning a window of positions before the step's first token and the step's tokens.
    /// </summary>
    public int MostHeld(int length, int chunk)
    {
        int all = BlocksFor(length), held = 0;
        chunk = Math.Clamp(chunk, 1, length);
        foreach (var window in Windows)
            held += window is int w ? Math.Min(all, (int)Math.Min(int.MaxValue, ((long)w - 1 + chunk + BlockSize - 1) / BlockSize + 1)) : all;
        return held;
    }

    /// <summary>
    /// A pool that holds <paramref name="sequences"/> sequences of <paramref name="length"/> positions at once while a step
    /// feeds at most <paramref name="chunk"/> prompt tokens over all of them: each holds at most a decode row's blocks
    /// (<see cref="MostHeld"/> with one token), and a prompt chunk of c tokens spans at most ⌈c / BlockSize⌉ + 2 blocks more in
    /// each sliding group. Never more than every sequence holding every position.
    /// </summary>
    public int PoolFor(int sequences, int length, int chunk)
    {
        int sliding = Windows.Count(w => w is not null);
        long pool = (long)sequences * MostHeld(length, 1) + (long)sliding * (BlocksFor(Math.Min(chunk, length)) + 2L * sequences);
        return (int)Math.Min(pool, (long)sequences * MostHeld(length, length));
    }
}
