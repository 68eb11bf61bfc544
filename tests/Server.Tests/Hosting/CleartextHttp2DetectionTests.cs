using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Hosting;

/// <summary>
/// The connection middleware that tells HTTP/2 with prior knowledge from HTTP/1.1 on the cleartext port, on a real server:
/// clients that reset or go silent before their first request must neither log errors nor hold connections open.
/// </summary>
public sealed class CleartextHttp2DetectionTests : IAsyncLifetime
{
    /// <summary>
    /// Short, so the silent connections' test is quick; not 1 s, at which a clean-clone CI run (2 cores, every test class
    /// in parallel, two servers starting beside it) once closed the HTTP/2 client's own connection before its preface was read.
    /// </summary>
    private static readonly TimeSpan SilenceLimit = TimeSpan.FromSeconds(3);
    private readonly string _cache = TestDirectories.Path("h2c-detection");
    private readonly CapturedLogs _logs = new();
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartListeningAsync(builder =>
        {
            _logs.AddTo(builder);
            builder.WebHost.ConfigureKestrel(k => k.Limits.KeepAliveTimeout = SilenceLimit);
        }, "--cache-dir", _cache, "--dtype", "float32");

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }

    [Fact]
    public async Task Connection_ResetBeforeOrDuringItsFirstBytes_NoWarningLoggedAndBothProtocolsServed()
    {
        byte[][] heads = [[], "PRI * HTTP/2.0\r\n"u8.ToArray(), "GET /hea"u8.ToArray()];
        for (int i = 0; i < 60; i++)
        {
            using var socket = await ConnectAsync();
            if (heads[i % heads.Length].Length > 0)
                await socket.SendAsync(heads[i % heads.Length]);
            socket.LingerState = new LingerOption(true, 0);   // a reset, as a client that cancels may close
            socket.Close();
        }

        using var http1 = await _server.Http.GetAsync("/healthz");
        using var http2Client = new HttpClient { BaseAddress = _server.Address, DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var http2 = await http2Client.GetAsync("/healthz");
        Assert.Equal((HttpStatusCode.OK, HttpVersion.Version11), (http1.StatusCode, http1.Version));
        Assert.Equal((HttpStatusCode.OK, HttpVersion.Version20), (http2.StatusCode, http2.Version));
        // A reset's log entry would come from the connection's own task, after the request above may have been served.
        Assert.False(SpinWait.SpinUntil(() => Unexpected().Count > 0, 2000), string.Join("\n", Unexpected().Take(5)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("PRI * HTTP/2.0\r\n")]
    public async Task Connection_SilentBeforeItsFirstRequest_ClosedByTheServer(string head)
    {
        using var socket = await ConnectAsync();
        if (head.Length > 0)
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(head));
        using var waiting = new CancellationTokenSource(SilenceLimit + TimeSpan.FromSeconds(20));
        int received;
        try
        {
            received = await socket.ReceiveAsync(new byte[64], SocketFlags.None, waiting.Token);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            received = 0;
        }

        Assert.Equal(0, received);   // closed, not answered; the token's expiry would throw instead
        Assert.Empty(Unexpected());
    }

    private async Task<Socket> ConnectAsync()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, _server.Address.Port);
        return socket;
    }

    /// <summary>Warnings and errors but the start-up ones every server without a model writes (demo model, demo adapters).</summary>
    private IReadOnlyList<CapturedLogEntry> Unexpected() =>
        _logs.AtLeast(LogLevel.Warning, e => e.Category.StartsWith("Serving.Runtime.Hosting.ModelHost", StringComparison.Ordinal)
            || e.Category.StartsWith("Serving.Server.Hosting.DemoModelDefaults", StringComparison.Ordinal));
}
