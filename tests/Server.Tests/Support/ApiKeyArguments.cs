namespace Serving.Server.Tests.Support;

/// <summary>Server arguments for API keys: users of their own tenants, each allowed one source folder, then an admin.</summary>
internal static class ApiKeyArguments
{
    /// <param name="admin">The admin key, last in the list.</param>
    /// <param name="users">Each user's key, tenant and allowed source, in key order.</param>
    public static string[] For(string admin, params (string Key, string Tenant, string Source)[] users)
    {
        var args = new List<string>();
        for (int i = 0; i < users.Length; i++)
            args.AddRange([$"--Serving:Auth:Keys:{i}:Key", users[i].Key, $"--Serving:Auth:Keys:{i}:Tenant", users[i].Tenant,
                $"--Serving:Auth:Keys:{i}:AllowedSources:0", users[i].Source]);
        args.AddRange([$"--Serving:Auth:Keys:{users.Length}:Key", admin, $"--Serving:Auth:Keys:{users.Length}:Role", "Admin"]);
        return [.. args];
    }
}
