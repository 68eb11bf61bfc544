using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Serving.Engine.Kernels;

/// <summary>
/// One OpenMP region held open while a run of parallel calls is made from one thread (a decode step's 33 projections and
/// the kernels between them): inside <see cref="Run{TBody}"/>, <see cref="OpenMpTeam.For{TWork}(int, TWork)"/> on the
/// holding thread posts its parts to the team's threads, which are already in the region, instead of entering a region
/// of its own. A call then costs a post and a check-in rather than a fork and a join.
/// <para>
/// Why: on the bench preset's int8 step (33 projection calls of 1–32 MB, 2 threads), a C harness ran the same calls 14–16 %
/// faster inside one region than entering a region per call (docs/benchmarks/int8.md); an empty region costs 3.5 µs on
/// that machine, and each call's parts start cold streams while the team assembles.
/// </para>
/// <para>
/// Protocol: the holder writes a call (its work, parts, a zeroed claim counter and check-in count), then increments
/// <c>Posted</c>; each team thread, waiting natively for <c>Posted</c> to change, claims parts until none is left, then
/// checks in. The holder claims parts too and returns only when every team thread has checked in, so no thread touches a
/// call's state (on the holder's stack) after it returns. The region ends when the body returns (<c>Done</c>). Only the
/// holding thread posts: a For made inside a part, or on any other thread, enters a region as before.
/// <c>SERVING_HELD_TEAM=0</c> switches holding off (every call enters its own region).
/// </para>
/// </summary>
internal static unsafe class HeldTeamRegion
{
    private static readonly delegate* unmanaged[Cdecl]<long*, long, int*, long> WaitPost;
    private static readonly delegate* unmanaged[Cdecl]<int*, int, void> WaitCount;

    static HeldTeamRegion()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_HELD_TEAM", out _);
        if (handle == 0 || !OpenMpTeam.IsAvailable || !NativeLibrary.TryGetExport(handle, "serving_team_wait_post", out nint post)
            || !NativeLibrary.TryGetExport(handle, "serving_team_wait_count", out nint count))
            return;
        WaitPost = (delegate* unmanaged[Cdecl]<long*, long, int*, long>)post;
        WaitCount = (delegate* unmanaged[Cdecl]<int*, int, void>)count;
    }

    /// <summary>True when regions can be held (the OpenMP team and the native waits are there).</summary>
    public static bool IsAvailable => WaitPost != null;

    /// <summary>True on a thread that holds a region, outside the parts it runs.</summary>
    public static bool Holding => _held != null;

    /// <summary>The held region's state while the calling thread holds one (outside the parts it runs), else null.</summary>
    [ThreadStatic] private static State* _held;

    private struct State
    {
        public delegate*<void*, void> Body;
        public void* BodyWork;
        public nint BodyError;
        public int Done;
        public int OtherThreads;
        public long Posted;
        public delegate*<void*, int, void> Invoke;
        public void* Work;
        public int Parts;
        public int Claimed;
        public int CheckedIn;

        /// <summary>A <see cref="GCHandle"/> to the first failure of a part of the current call, or 0.</summary>
        public nint Error;
    }

    /// <summary>
    /// Runs <paramref name="body"/> on the calling thread with a region held around it (or plainly, where none can be held:
    /// no team, one thread, or already inside one). The body's exception is rethrown here.
    /// </summary>
    public static void Run<TBody>(ref TBody body) where TBody : struct, IHeldBody
    {
        if (!IsAvailable || _held != null || OpenMpTeam.Threads == 1)
        {
            body.Run();
            return;
        }

        var state = new State { Body = &InvokeBody<TBody>, BodyWork = Unsafe.AsPointer(ref body) };
        OpenMpTeam.Enter(&Enter, (nint)(&state), OpenMpTeam.Threads);
        if (state.BodyError != 0)
            TakeError(ref state.BodyError).Throw();
    }

    /// <summary>
    /// <see cref="OpenMpTeam.For{TWork}(int, TWork)"/> inside a held region on its holding thread: posts the parts to the team
    /// and runs them with it. False (nothing done) on any other thread.
    /// </summary>
    public static bool TryFor<TWork>(int parts, ref TWork work) where TWork : struct, IParallelPart
    {
        var state = _held;
        if (state == null)
            return false;
        state->Invoke = &InvokePart<TWork>;
        state->Work = Unsafe.AsPointer(ref work);
        state->Parts = parts;
        state->Claimed = 0;
        state->CheckedIn = 0;
        Interlocked.Increment(ref state->Posted);     // a full fence: the call's fields are written before the post is seen
        _held = null;                                 // a For made inside a part runs on a region of its own
        try
        {
            Claim(state);
        }
        finally
        {
            _held = state;
        }

        WaitCount(&state->CheckedIn, state->OtherThreads);
        if (state->Error != 0)
            TakeError(ref state->Error).Throw();
        return true;
    }

    private static void InvokeBody<TBody>(void* body) where TBody : struct, IHeldBody => Unsafe.AsRef<TBody>(body).Run();

    private static void InvokePart<TWork>(void* work, int part) where TWork : struct, IParallelPart => Unsafe.AsRef<TWork>(work).Run(part);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Enter(nint data)
    {
        var state = (State*)data;
        if (OpenMpTeam.ThreadInTeam == 0)
            Hold(state);
        else
            Serve(state);
    }

    /// <summary>The thread that entered: runs the body with the region held; nothing may unwind into OpenMP's frames.</summary>
    private static void Hold(State* state)
    {
        state->OtherThreads = OpenMpTeam.TeamSize - 1;
        _held = state;
        try
        {
            state->Body(state->BodyWork);
        }
        catch (Exception e)
        {
            state->BodyError = GCHandle.ToIntPtr(GCHandle.Alloc(ExceptionDispatchInfo.Capture(e)));
        }
        finally
        {
            _held = null;
            Volatile.Write(ref state->Done, 1);
        }
    }

    /// <summary>Every other team thread: takes part in each posted call until the body is done.</summary>
    private static void Serve(State* state)
    {
        long seen = 0;
        while (true)
        {
            long posted = WaitPost(&state->Posted, seen, &state->Done);
            if (posted == seen)
                return;
            seen = posted;
            Claim(state);
            Interlocked.Increment(ref state->CheckedIn);
        }
    }

    private static void Claim(State* state)
    {
        for (int p; (p = Interlocked.Increment(ref state->Claimed) - 1) < state->Parts;)
        {
            try
            {
                state->Invoke(state->Work, p);
            }
            catch (Exception e)
            {
                var handle = GCHandle.Alloc(ExceptionDispatchInfo.Capture(e));
                if (Interlocked.CompareExchange(ref state->Error, GCHandle.ToIntPtr(handle), 0) != 0)
                    handle.Free();
            }
        }
    }

    private static ExceptionDispatchInfo TakeError(ref nint slot)
    {
        var handle = GCHandle.FromIntPtr(slot);
        slot = 0;
        var error = (ExceptionDispatchInfo)handle.Target!;
        handle.Free();
        return error;
    }
}
