namespace Serving.Bench;

/// <summary>Resident-set figures from /proc/self (Linux).</summary>
internal static class ProcessMemory
{
    public static long CurrentRssBytes() => ReadStatusKb("VmRSS:") * 1024;

    public static long PeakRssBytes() => ReadStatusKb("VmHWM:") * 1024;

    /// <summary>Resets VmHWM to the current RSS (writing 5 to clear_refs), so the next peak covers only what follows.</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long ReadStatusKb(string key)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return 0;
    }
}
