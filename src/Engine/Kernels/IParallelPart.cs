namespace Serving.Engine.Kernels;

/// <summary>
/// One parallel region's work as a struct: <see cref="OpenMpTeam.For{TWork}(int, TWork)"/> runs part p of [0, parts) on
/// whichever team thread claims it. A struct read in place from the caller's stack, so that entering a region allocates
/// nothing (a lambda would allocate its closure and delegate on every call of a decode step's kernels).
/// </summary>
internal interface IParallelPart
{
    /// <summary>Runs part <paramref name="part"/>; called once per part, from any thread of the team, concurrently with the others.</summary>
    void Run(int part);
}
