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

    public static ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        if (connection.Features.Get<ITlsConnectionFeature>() is null && await StartsWithPrefaceAsync(connection))
        {
            connection.Features.Set<ITlsConnectionFeature>(new NegotiatedCleartext());
            connection.Features.Set<ITlsApplicationProtocolFeature>(new NegotiatedCleartext());
        }

        await next(connection);
    };

    /// <summary>Peeks until the bytes read either match the whole preface or differ from it; consumes nothing.</summary>
    private static async Task<bool> StartsWithPrefaceAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync(connection.ConnectionClosed);
            var buffer = result.Buffer;
            int n = (int)Math.Min(buffer.Length, Preface.Length);
            var head = buffer.Slice(0, n).ToArray();
            bool matches = head.AsSpan().SequenceEqual(Preface.AsSpan(0, n));
            if (!matches || n == Preface.Length || result.IsCompleted)
            {
                input.AdvanceTo(buffer.Start);
                return matches && n == Preface.Length;
            }

            input.AdvanceTo(buffer.Start, buffer.End);            // a prefix so far: wait for more bytes
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
