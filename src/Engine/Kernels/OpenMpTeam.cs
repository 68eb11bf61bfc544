using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Serving.Engine.Kernels;

/// <summary>
/// Runs our CPU kernels' parallel parts on libtorch's own OpenMP team instead of the .NET thread pool.
/// <para>
/// Why: between two GEMMs, libtorch's OpenMP workers keep spinning (libgomp's default wait policy) on the very cores a
/// <see cref="Parallel.For(int, int, Action{int})"/> would hand our LoRA work to, so on a small machine the two pools
/// fight over the cores and the second half of our work runs late. Entering the same team with <c>GOMP_parallel</c>
/// gives the work to threads that are already awake and owns no extra threads. Making the workers sleep instead
/// (<c>OMP_WAIT_POLICY=PASSIVE</c>) was measured: it helps our kernels but slows libtorch's own GEMMs by 11 %.
/// </para>
/// <para>
/// The OpenMP runtime is the one libtorch loaded (libgomp, named with a hash in TorchSharp's packages; Intel's
/// libiomp5 exports the same GOMP entry points). Where none is loaded (a CUDA build's host code, another OS), callers
/// fall back to the thread pool.
/// </para>
/// </summary>
internal static unsafe class OpenMpTeam
{
    private static readonly delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<nint, void>, nint, uint, uint, void> Parallel;
    private static readonly delegate* unmanaged[Cdecl]<int> MaxThreads;
    private static readonly delegate* unmanaged[Cdecl]<int> ThreadNumber;
    private static readonly delegate* unmanaged[Cdecl]<int> TeamThreads;

    static OpenMpTeam()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("SERVING_KERNEL_THREADS") == "dotnet")
            return;
        // The team is the one libtorch loaded: make sure it is loaded, or a kernel that runs before any tensor op (a test,
        // a tool) would leave every later region on the thread pool for the life of the process.
        TorchSharp.torch.get_num_threads();
        foreach (string path in LoadedOpenMpLibraries())
        {
            if (!NativeLibrary.TryLoad(path, out nint handle))
                continue;
            if (NativeLibrary.TryGetExport(handle, "GOMP_parallel", out nint parallel)
                && NativeLibrary.TryGetExport(handle, "omp_get_max_threads", out nint maxThreads)
                && NativeLibrary.TryGetExport(handle, "omp_get_thread_num", out nint threadNumber)
                && NativeLibrary.TryGetExport(handle, "omp_get_num_threads", out nint teamThreads))
            {
                Parallel = (delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<nint, void>, nint, uint, uint, void>)parallel;
                MaxThreads = (delegate* unmanaged[Cdecl]<int>)maxThreads;
                ThreadNumber = (delegate* unmanaged[Cdecl]<int>)threadNumber;
                TeamThreads = (delegate* unmanaged[Cdecl]<int>)teamThreads;
                LibraryPath = path;
                return;
            }
        }
    }

    /// <summary>The OpenMP library in use, or null when kernels use the .NET thread pool.</summary>
    public static string? LibraryPath { get; }

    public static bool IsAvailable => LibraryPath is not null;

    /// <summary>Threads a parallel region gets on the calling thread (libtorch's <c>torch.set_num_threads</c>), else the core count.</summary>
    public static int Threads => IsAvailable ? Math.Max(1, MaxThreads()) : Environment.ProcessorCount;

    /// <summary>
    /// True on a thread that holds a region (<see cref="HeldTeamRegion"/>): a <see cref="For{TWork}(int, TWork)"/> there
    /// costs a post and a check-in, not a region's fork and join, so kernels share smaller work with the team.
    /// </summary>
    public static bool CallsAreCheap => HeldTeamRegion.Holding;

    /// <summary>
    /// Runs <paramref name="body"/>(p) for every p in [0, <paramref name="parts"/>), as <see cref="For{TWork}(int, TWork)"/>
    /// (for work off the decode step's path: the lambda allocates).
    /// </summary>
    public static void For(int parts, Action<int> body) => For(parts, new DelegatePart(body));

    /// <summary>
    /// Runs <paramref name="work"/>.Run(p) for every p in [0, <paramref name="parts"/>), spread over the team (the calling
    /// thread takes part): each thread claims the next part not yet taken until none is left, so a thread that starts late
    /// or is preempted leaves its parts to the others. Returns when all parts are done and rethrows the first exception a
    /// part threw (the other parts still run). The team's threads read <paramref name="work"/> in place, on this call's
    /// stack: nothing is allocated unless a part throws.
    /// </summary>
    public static void For<TWork>(int parts, TWork work) where TWork : struct, IParallelPart
    {
        if (parts <= 0)
            return;
        if (parts > 1 && !_alone && HeldTeamRegion.TryFor(parts, ref work))
            return;
        var region = new Region { Invoke = &Invoke<TWork>, Work = Unsafe.AsPointer(ref work), Parts = parts };
        if (parts == 1 || _alone)
        {
            for (int p = 0; p < parts; p++)
                region.Run(p);
        }
        else if (!IsAvailable)
        {
            var copy = work;   // the thread pool's delegate cannot read the caller's stack
            var errors = new ExceptionDispatchInfo?[1];
            System.Threading.Tasks.Parallel.For(0, parts, p =>
            {
                try
                {
                    copy.Run(p);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref errors[0], ExceptionDispatchInfo.Capture(e), null);
                }
            });
            errors[0]?.Throw();
        }
        else
            Parallel(&RunRegion, (nint)(&region), (uint)Math.Min(parts, Threads), 0);

        if (region.Error != 0)
        {
            var handle = GCHandle.FromIntPtr(region.Error);
            var error = (ExceptionDispatchInfo)handle.Target!;
            handle.Free();
            error.Throw();
        }
    }

    private static void Invoke<TWork>(void* work, int part) where TWork : struct, IParallelPart => Unsafe.AsRef<TWork>(work).Run(part);

    /// <summary>A region's state on the calling thread's stack; the team's threads reach it through the pointer GOMP passes.</summary>
    private struct Region
    {
        public delegate*<void*, int, void> Invoke;
        public void* Work;
        public int Parts;
        public int Claimed;

        /// <summary>A <see cref="GCHandle"/> to the first failure's <see cref="ExceptionDispatchInfo"/>, or 0.</summary>
        public nint Error;

        /// <summary>Runs one part; nothing may unwind into native OpenMP frames, so the first failure is kept for the caller.</summary>
        public void Run(int part)
        {
            try
            {
                Invoke(Work, part);
            }
            catch (Exception e)
            {
                var handle = GCHandle.Alloc(ExceptionDispatchInfo.Capture(e));
                if (Interlocked.CompareExchange(ref Error, GCHandle.ToIntPtr(handle), 0) != 0)
                    handle.Free();
            }
        }
    }

    private readonly struct DelegatePart(Action<int> body) : IParallelPart
    {
        public void Run(int part) => body(part);
    }

    /// <summary>Runs <paramref name="body"/>(<paramref name="data"/>) on every thread of a team of up to <paramref name="threads"/> (GOMP_parallel).</summary>
    internal static void Enter(delegate* unmanaged[Cdecl]<nint, void> body, nint data, int threads) => Parallel(body, data, (uint)threads, 0);

    /// <summary>The calling thread's number in its team (0: the thread that entered the region).</summary>
    internal static int ThreadInTeam => ThreadNumber();

    /// <summary>Threads of the calling thread's team.</summary>
    internal static int TeamSize => TeamThreads();

    /// <summary>Set while <see cref="Alone"/> runs its work: regions entered on this thread run on it alone.</summary>
    [ThreadStatic] private static bool _alone;

    /// <summary>
    /// Runs <paramref name="work"/> with every region it enters run on the calling thread only. For background work beside
    /// the engine loop (a DoRA adapter's norms on the thread pool): it then takes one core, not a second OpenMP team spun
    /// up for a pool thread, and the engine's own team keeps the rest.
    /// </summary>
    public static void Alone(Action work)
    {
        bool outer = _alone;
        _alone = true;
        try
        {
            work();
        }
        finally
        {
            _alone = outer;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void RunRegion(nint data)
    {
        var region = (Region*)data;
        for (int p; (p = Interlocked.Increment(ref region->Claimed) - 1) < region->Parts;)
            region->Run(p);
    }

    /// <summary>Files mapped into this process whose name says OpenMP runtime, in load order.</summary>
    private static IEnumerable<string> LoadedOpenMpLibraries()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/maps");
        }
        catch (IOException)
        {
            yield break;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string line in lines)
        {
            int slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash < 0)
                continue;
            string path = line[slash..];
            string name = Path.GetFileName(path);
            if ((name.StartsWith("libgomp", StringComparison.Ordinal) || name.StartsWith("libiomp5", StringComparison.Ordinal))
                && seen.Add(path))
                yield return path;
        }
    }
}
