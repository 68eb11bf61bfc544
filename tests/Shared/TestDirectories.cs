namespace Serving.Tests.Shared;

internal static class TestDirectories
{
    public static string Create(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "serving-tests", $"{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

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
