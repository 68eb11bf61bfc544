namespace Serving.Engine.Kernels;

/// <summary>Work over an index range, split by <see cref="RangeParts{TWork}"/> into contiguous ranges that threads claim.</summary>
internal interface IParallelRange
{
    /// <summary>Runs indices [<paramref name="from"/>, <paramref name="to"/>), a non-empty range; concurrently with other ranges.</summary>
    void Run(long from, long to);
}
