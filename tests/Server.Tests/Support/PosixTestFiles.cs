using System.Runtime.InteropServices;

namespace Serving.Server.Tests.Support;

/// <summary>Special files for the attack tests: FIFOs, and whether any thread of any process still has one open for reading.</summary>
internal static partial class PosixTestFiles
{
    private const int O_WRONLY = 1, O_NONBLOCK = 0x800, ENXIO = 6;

    public static void MakeFifo(string path)
    {
        if (mkfifo(path, Convert.ToUInt32("644", 8)) != 0)
            throw new IOException($"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>
    /// True when some reader has the FIFO open, or is blocked opening it (Linux counts a reader before it waits for a
    /// writer): a non-blocking open for writing fails with ENXIO exactly when there is none.
    /// </summary>
    public static bool FifoHasReader(string path)
    {
        int fd = open(path, O_WRONLY | O_NONBLOCK);
        if (fd >= 0)
        {
            close(fd);
            return true;
        }

        int errno = Marshal.GetLastPInvokeError();
        return errno == ENXIO ? false : throw new IOException($"open {path} failed (errno {errno})");
    }

    /// <summary>A file of <paramref name="bytes"/> that occupies no disk blocks (a hole), as an attacker makes one in a second.</summary>
    public static void MakeSparse(string path, long bytes)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        stream.SetLength(bytes);
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkfifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int close(int fd);
}
