namespace Serving.Engine.Kernels;

/// <summary>
/// Work run by <see cref="HeldTeamRegion.Run{TBody}"/> on the calling thread with an OpenMP region held around it: a struct
/// read in place from the caller's stack, so that holding a region allocates nothing.
/// </summary>
internal interface IHeldBody
{
    /// <summary>Runs the work; its parallel calls go to the held region's team.</summary>
    void Run();
}
