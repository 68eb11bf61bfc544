namespace Serving.AdapterStore.Files;

internal enum AdapterFileProblem
{
    /// <summary>Missing, or outside the caller's roots after resolving links: the two are one answer, so probing reveals nothing.</summary>
    NotFound,

    /// <summary>Not a regular file, too large, hard-linked, or changed while it was read.</summary>
    Refused,

    /// <summary>Reading took longer than the policy allows (a stalled network file system).</summary>
    TimedOut,
}
