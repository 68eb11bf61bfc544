using System.Net;
using System.Net.Sockets;

namespace Serving.Server.Tests.Support;

/// <summary>Loopback ports no listener holds, for servers a test starts on an address of its own.</summary>
public static class FreePorts
{
    /// <summary>A port the OS just handed out and took back: free unless another process takes it first.</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
