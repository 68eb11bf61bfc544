using System.Buffers;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Serving.Server.Hosting;

/// <summary>
/// REST, SSE and gRPC on one cleartext port. Kestrel serves a cleartext endpoint with both HTTP/1.1 and HTTP/2 as HTTP/1.1
/// only (it picks the protocol by TLS ALPN; dotnet/aspnetcore#56984), so gRPC clients using HTTP/2 with prior knowledge
/// would be refused. This connection middleware looks at the first bytes: the RFC 9113 client preface selects HTTP/2 (by
/// presenting the protocol as negotiated "h2"), anything else goes on as HTTP/1.1 with its bytes untouched. TLS endpoints
/// are not affected (their first bytes are a TLS handshake). Requires <c>AllowAlternateSchemes</c>, since HTTP/2 requests
/// then carry <c>:scheme http</c> on a connection Kestrel treats as negotiated.
/// </summary>
internal static class CleartextHttp2Detection
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    /// <param name="next">The rest of the connection's pipeline (Kestrel's HTTP handling).</param>
    /// <param name="silenceLimit">How long a new connection may stay silent, or stop part-way through the preface, before it is
    /// closed: read per connection, so that Kestrel's <c>KeepAliveTimeout</c> (its own limit for a connection that has sent
    /// nothing) applies as configured by then. Why: until this middleware passes the connection on, none of Kestrel's
    /// HTTP timeouts run, so without a limit a client could hold connections open for ever by sending nothing.</param>
    public static ConnectionDelegate Middleware(ConnectionDelegate next, Func<TimeSpan> silenceLimit) => async connection =>
    {
        if (connection.Features.Get<ITlsConnectionFeature>() is null)
        {
            switch (await FirstBytesAsync(connection, silenceLimit()))
            {
                case FirstBytes.None:
                    return;   // closed, reset or silent: nothing to serve, and nothing worth a log line above Debug
                case FirstBytes.Http2Preface:
                    connection.Features.Set<ITlsConnectionFeature>(new NegotiatedCleartext());
                    connection.Features.Set<ITlsApplicationProtocolFeature>(new NegotiatedCleartext());
                    break;
            }
        }

        await next(connection);
    };

    private enum FirstBytes { None, Http2Preface, Other }

    /// <summary>
    /// Peeks until the bytes read either match the whole preface or differ from it; consumes nothing. None when the client
    /// reset or closed the connection first, or sent too little within <paramref name="silenceLimit"/>.
    /// </summary>
    private static async Task<FirstBytes> FirstBytesAsync(ConnectionContext connection, TimeSpan silenceLimit)
    {
        var input = connection.Transport.Input;
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        waiting.CancelAfter(silenceLimit);
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(waiting.Token);
                var buffer = result.Buffer;
                int n = (int)Math.Min(buffer.Length, Preface.Length);
                var head = buffer.Slice(0, n).ToArray();
                bool matches = head.AsSpan().SequenceEqual(Preface.AsSpan(0, n));
                if (!matches || n == Preface.Length || result.IsCompleted || result.IsCanceled)
                {
                    input.AdvanceTo(buffer.Start);
                    return matches && n == Preface.Length ? FirstBytes.Http2Preface : n == 0 ? FirstBytes.None : FirstBytes.Other;
                }

                input.AdvanceTo(buffer.Start, buffer.End);            // a prefix so far: wait for more bytes
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)   // IOException: a reset (ConnectionResetException) among others
        {
            return FirstBytes.None;
        }
    }

    /// <summary>Stands for "HTTP/2 agreed" on a cleartext connection: no certificate, application protocol h2.</summary>
    private sealed class NegotiatedCleartext : ITlsConnectionFeature, ITlsApplicationProtocolFeature
    {
        public X509Certificate2? ClientCertificate { get; set; }
        public ReadOnlyMemory<byte> ApplicationProtocol => "h2"u8.ToArray();

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);
    }
}
