namespace Serving.Engine.Kernels;

/// <summary>
/// [0, <c>total</c>) as parts of <c>share</c> indices each (the last one shorter; parts past the end run nothing), each
/// part one call of <typeparamref name="TWork"/>'s <see cref="IParallelRange.Run"/>.
/// </summary>
internal struct RangeParts<TWork>(TWork work, long total, long share) : IParallelPart where TWork : struct, IParallelRange
{
    private TWork _work = work;

    /// <summary>
    /// <paramref name="parts"/> parts over [0, <paramref name="total"/>), each a multiple of <paramref name="multiple"/>
    /// indices long (the last excepted).
    /// </summary>
    public static RangeParts<TWork> Even(TWork work, long total, int parts, long multiple = 1)
    {
        long share = (total + parts - 1) / parts;
        return new RangeParts<TWork>(work, total, (share + multiple - 1) / multiple * multiple);
    }

    public void Run(int part)
    {
        long from = Math.Min(total, part * share), to = Math.Min(total, from + share);
        if (from < to)
            _work.Run(from, to);
    }
}
