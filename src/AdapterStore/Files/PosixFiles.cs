using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Serving.AdapterStore.Files;

/// <summary>
/// The few POSIX calls .NET does not expose: <c>realpath</c> (every link resolved, not only the last one),
/// <c>open</c> with <c>O_NOFOLLOW | O_NONBLOCK</c> (a link swapped in after the check is refused, a FIFO does not block the
/// opening thread) and <c>statx</c> on the opened descriptor (type, size, link count and change time of what was really
/// opened; statx's layout is the same on every Linux architecture, unlike <c>struct stat</c>).
/// </summary>
internal static partial class PosixFiles
{
    private const int ENOENT = 2, ENOTDIR = 20, ELOOP = 40, ENAMETOOLONG = 36;
    private const int O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_BASIC_STATS = 0x7ff;
    private const int StatxSize = 256;

    /// <summary>File type bits of <c>st_mode</c>.</summary>
    public const int TypeMask = 0xF000, RegularFile = 0x8000, Directory = 0x4000;

    // O_NOFOLLOW is the only open flag used here whose value differs between Linux architectures.
    private static int NoFollow => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    /// <summary>What <c>statx</c> says of an open file.</summary>
    public readonly record struct Status(int Mode, long Size, uint Links, ulong Inode, long ChangedSeconds, uint ChangedNanoseconds,
        long ModifiedSeconds, uint ModifiedNanoseconds)
    {
        public bool IsRegularFile => (Mode & TypeMask) == RegularFile;

        /// <summary>A name for the file type, for messages about the caller's own files.</summary>
        public string TypeName => (Mode & TypeMask) switch
        {
            RegularFile => "a regular file",
            Directory => "a folder",
            0x1000 => "a FIFO (named pipe)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            _ => "not a regular file",
        };
    }

    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>The canonical absolute path with every symbolic link resolved; null when it (or a component) does not exist.</summary>
    public static string? RealPath(string path)
    {
        if (path.Contains('\0', StringComparison.Ordinal))
            return null;
        IntPtr resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is ENOENT or ENOTDIR or ELOOP or ENAMETOOLONG)
                return null;
            throw new IOException($"cannot resolve the path (errno {errno})");
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            free(resolved);
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> read-only without following a final symbolic link and without blocking on a FIFO.
    /// Returns null with the errno when it cannot be opened (<c>ELOOP</c>: the last component is a link).
    /// </summary>
    public static SafeFileHandle? OpenNoFollow(string path, out int errno)
    {
        int fd = open(path, NoFollow | O_NONBLOCK | O_CLOEXEC);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
    }

    public static bool IsLinkError(int errno) => errno == ELOOP;

    /// <summary><c>statx</c> of an open descriptor.</summary>
    public static unsafe Status Stat(SafeFileHandle handle)
    {
        byte* buffer = stackalloc byte[StatxSize];
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (statx((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH, STATX_BASIC_STATS, buffer) != 0)
                throw new IOException($"statx failed (errno {Marshal.GetLastPInvokeError()})");
        }
        finally
        {
            if (added)
                handle.DangerousRelease();
        }

        // struct statx: nlink u32 @16, mode u16 @28, ino u64 @32, size u64 @40, ctime @96, mtime @112 (tv_sec i64, tv_nsec u32).
        return new Status(*(ushort*)(buffer + 28), *(long*)(buffer + 40), *(uint*)(buffer + 16), *(ulong*)(buffer + 32),
            *(long*)(buffer + 96), *(uint*)(buffer + 104), *(long*)(buffer + 112), *(uint*)(buffer + 120));
    }

    /// <summary>The path the kernel holds for an open descriptor (<c>/proc/self/fd/N</c>); null where /proc is not mounted.</summary>
    public static string? PathOf(SafeFileHandle handle)
    {
        string link = "/proc/self/fd/" + handle.DangerousGetHandle().ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            return new FileInfo(link).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr realpath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void free(IntPtr pointer);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
