using System.Diagnostics;
using Microsoft.Win32.SafeHandles;
using Serving.AdapterStore.Registry;

namespace Serving.AdapterStore.Files;

/// <summary>
/// The one way adapter files are read, by every source, registration, sync and tier reload. For each file: resolve the
/// real path (all links), check it against the policy's roots, open that path with <c>O_NOFOLLOW | O_NONBLOCK</c>, make
/// sure the kernel opened exactly the checked path (<c>/proc/self/fd</c>: a directory swapped for a link after the check
/// is caught), refuse anything but a regular file and anything larger than the limit from <c>statx</c> before reading a
/// byte, then read it in chunks that observe cancellation and the policy's time limit.
/// </summary>
/// <remarks>
/// Why not <see cref="File.OpenRead(string)"/>: it follows links, blocks the calling thread forever in <c>open</c> on a FIFO
/// with no writer, and reads a device or a sparse terabyte as happily as an adapter.
/// </remarks>
internal static class AdapterFileReader
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    private const int Chunk = 4 << 20;

    /// <summary>Reads both files of the adapter folder <paramref name="folder"/> (a local path).</summary>
    public static AdapterFiles Read(string folder, AdapterReadPolicy policy, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        string real = ResolveFolder(folder, policy);
        var (config, _) = ReadFile(real, ConfigFile, AdapterReadPolicy.MaxConfigBytes, policy, clock, ct, pooled: false);
        var (weights, weightsLength) = ReadFile(real, WeightsFile, policy.MaxWeightsBytes, policy, clock, ct, pooled: true);
        return new AdapterFiles(real, config, weights, weightsLength);
    }

    /// <summary>
    /// One more file of the folder under the same rules (adapter_config.json for status calls, routing examples); null when
    /// the folder has no such file (or, confined, only a link out of the roots).
    /// </summary>
    public static byte[]? ReadOptional(string folder, string name, long maxBytes, AdapterReadPolicy policy, CancellationToken ct)
    {
        try
        {
            return ReadFile(ResolveFolder(folder, policy), name, maxBytes, policy, Stopwatch.StartNew(), ct, pooled: false).Bytes;
        }
        catch (AdapterFileException ex) when (ex.Problem == AdapterFileProblem.NotFound && ex.File is not null)
        {
            return null;
        }
    }

    /// <summary>
    /// The status of both files without reading them: identity, size and change times, so a cached version can be
    /// trusted until either file changes (the change time moves on every write and cannot be set back by a user).
    /// </summary>
    public static (PosixFiles.Status Config, PosixFiles.Status Weights) Status(string folder, AdapterReadPolicy policy)
    {
        string real = ResolveFolder(folder, policy);
        using var config = OpenChecked(real, ConfigFile, AdapterReadPolicy.MaxConfigBytes, policy, out var configStatus);
        using var weights = OpenChecked(real, WeightsFile, policy.MaxWeightsBytes, policy, out var weightsStatus);
        return (configStatus, weightsStatus);
    }

    private static string ResolveFolder(string folder, AdapterReadPolicy policy)
    {
        if (!PosixFiles.IsSupported)
            throw new PlatformNotSupportedException("adapter files are read with Linux system calls (realpath, O_NOFOLLOW, statx)");
        if (LocalAdapterPath.HasInvalidCharacter(folder))
            throw NotFound(null);
        string? real = PosixFiles.RealPath(Path.GetFullPath(folder));
        if (real is null || !policy.Allows(real) || !Directory.Exists(real))
            throw NotFound(null);
        return real;
    }

    private static SafeFileHandle OpenChecked(string folder, string name, long maxBytes, AdapterReadPolicy policy, out PosixFiles.Status status)
    {
        string? real = PosixFiles.RealPath(Path.Combine(folder, name));
        if (real is null || !policy.Allows(real))
            throw NotFound(name);
        var handle = PosixFiles.OpenNoFollow(real, out int errno);
        if (handle is null)
        {
            throw errno switch
            {
                _ when PosixFiles.IsLinkError(errno) => new AdapterFileException(AdapterFileProblem.Refused, name, "was replaced by a link while it was being opened"),
                13 => new AdapterFileException(AdapterFileProblem.Refused, name, "cannot be read by the server (permission denied)"),
                2 or 20 => NotFound(name),
                _ => new AdapterFileException(AdapterFileProblem.Refused, name, $"cannot be opened (errno {errno})"),
            };
        }

        try
        {
            if (PosixFiles.PathOf(handle) is string opened && opened != real)
                throw new AdapterFileException(AdapterFileProblem.Refused, name, "changed while it was being opened");
            status = PosixFiles.Stat(handle);
            if (!status.IsRegularFile)
                throw new AdapterFileException(AdapterFileProblem.Refused, name, $"is {status.TypeName}, not a regular file");
            if (status.Size > maxBytes)
                throw new AdapterFileException(AdapterFileProblem.Refused, name, $"is {status.Size} bytes, above the configured limit of {maxBytes}");
            if (policy.SingleLinkOnly && status.Links > 1)
                throw new AdapterFileException(AdapterFileProblem.Refused, name,
                    $"has {status.Links} hard links; files registered with a user key must have exactly one (copy the file instead of linking it)");
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The file's bytes: an array of exactly its length, or (<paramref name="pooled"/>) a buffer rented from
    /// <see cref="AdapterFileBuffers"/> of at least its length, which the caller returns.
    /// </summary>
    private static (byte[] Bytes, int Length) ReadFile(string folder, string name, long maxBytes, AdapterReadPolicy policy, Stopwatch clock,
        CancellationToken ct, bool pooled)
    {
        using var handle = OpenChecked(folder, name, maxBytes, policy, out var status);
        int length = checked((int)status.Size);
        var bytes = pooled ? AdapterFileBuffers.Rent(length) : GC.AllocateUninitializedArray<byte>(length);
        try
        {
            long offset = 0;
            while (offset < length)
            {
                ct.ThrowIfCancellationRequested();
                if (policy.Timeout != Timeout.InfiniteTimeSpan && clock.Elapsed > policy.Timeout)
                    throw new AdapterFileException(AdapterFileProblem.TimedOut, name, $"could not be read within {policy.Timeout.TotalSeconds:0.#} s");
                int read = RandomAccess.Read(handle, bytes.AsSpan((int)offset, (int)Math.Min(Chunk, length - offset)), offset);
                if (read == 0)
                    throw new AdapterFileException(AdapterFileProblem.Refused, name, "became shorter while it was being read");
                offset += read;
            }

            Span<byte> probe = stackalloc byte[1];
            if (RandomAccess.Read(handle, probe, offset) != 0)
                throw new AdapterFileException(AdapterFileProblem.Refused, name, "grew while it was being read");
            return (bytes, length);
        }
        catch when (pooled)
        {
            AdapterFileBuffers.Return(bytes, length);
            throw;
        }
    }

    private static AdapterFileException NotFound(string? file) =>
        new(AdapterFileProblem.NotFound, file, file is null ? "does not exist" : $"has no {file}");
}
