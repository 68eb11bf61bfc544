using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Serving.Server.Tests.Support;

/// <summary>
/// An S3 endpoint that has hung, for the timeout tests: a loopback TCP server that accepts connections and reads the
/// requests, then either never answers (<see cref="HungS3Mode.Silent"/>) or answers 200 with the headers and the first
/// bytes of an object's body and then goes quiet (<see cref="HungS3Mode.StallBody"/>). Connections stay open until
/// dispose, as a stuck server's would.
/// </summary>
public sealed class HungS3Server : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _connections = [];
    private readonly Task _accepting;
    private int _requests;

    public HungS3Server(HungS3Mode mode)
    {
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accepting = Task.Run(() => Accept(mode));
    }

    public string Url { get; }

    /// <summary>Requests whose headers arrived: each is one attempt of the client.</summary>
    public int Requests => Volatile.Read(ref _requests);

    private async Task Accept(HungS3Mode mode)
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                lock (_connections)
                    _connections.Add(client);
                _ = Task.Run(() => Serve(client, mode));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task Serve(TcpClient client, HungS3Mode mode)
    {
        try
        {
            var stream = client.GetStream();
            var buffer = new byte[16384];
            var request = new StringBuilder();
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                int n = await stream.ReadAsync(buffer, _stop.Token);
                if (n == 0)
                    return;
                request.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }

            Interlocked.Increment(ref _requests);
            if (mode == HungS3Mode.StallBody)
            {
                byte[] head = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n" +
                    "ETag: \"0123456789abcdef0123456789abcdef\"\r\nLast-Modified: Fri, 27 Nov 2026 00:00:00 GMT\r\nx-amz-request-id: hung\r\n\r\n");
                await stream.WriteAsync(head, _stop.Token);
                await stream.WriteAsync(new byte[64], _stop.Token);
                await stream.FlushAsync(_stop.Token);
            }

            await Task.Delay(Timeout.Infinite, _stop.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        lock (_connections)
            _connections.ForEach(c => c.Dispose());
        _stop.Dispose();
    }
}
