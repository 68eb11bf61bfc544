namespace Serving.Server.Tests.Support;

/// <summary>Per-test temporary folders under the system temp directory, removed best-effort afterwards.</summary>
internal static class TestDirectories
{
    public static string Path(string name) => System.IO.Path.Combine(System.IO.Path.GetTempPath(), "serving-tests", $"{name}-{Guid.NewGuid():N}");

    public static void Delete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
