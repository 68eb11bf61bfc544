/*
 * Waits for Serving.Engine.Kernels.HeldTeamRegion: a team thread of a held OpenMP region waits here, outside managed code,
 * for the next parallel call or the region's end, and the thread holding the region waits here for the others to check
 * in. Why native: a thread spinning in managed code would hold up every garbage collection until it reached a safe
 * point; in a native call it is in preemptive mode and the collector runs past it.
 */
#include <immintrin.h>
#include <stdint.h>

/* Returns *posted once it differs from seen, or seen once *done is set (posted read first: a call posted before the end is taken). */
int64_t serving_team_wait_post(const volatile int64_t *posted, int64_t seen, const volatile int32_t *done)
{
    for (;;)
    {
        int64_t now = *posted;
        if (now != seen)
            return now;
        if (*done)
            return seen;
        _mm_pause();
    }
}

/* Returns once *count has reached target. */
void serving_team_wait_count(const volatile int32_t *count, int32_t target)
{
    while (*count < target)
        _mm_pause();
}
