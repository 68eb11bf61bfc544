using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;
using Amazon.S3;

namespace Serving.Server.Tests.Support;

/// <summary>A real S3-protocol server for the tests: moto's server mode on a free loopback port, stopped on dispose.</summary>
public sealed class MotoS3Server : IAsyncDisposable
{
    public const string AccessKey = "testing";
    public const string SecretKey = "testing";
    private readonly Process _process;

    private MotoS3Server(Process process, string url)
    {
        _process = process;
        Url = url;
        Client = new AmazonS3Client(new BasicAWSCredentials(AccessKey, SecretKey),
            new AmazonS3Config { ServiceURL = url, ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
    }

    public string Url { get; }
    public AmazonS3Client Client { get; }

    public int Port { get; private init; }

    /// <summary>Starts moto on <paramref name="port"/> (0: a free one). moto keeps its buckets in memory: a restart starts empty.</summary>
    public static async Task<MotoS3Server> StartAsync(int port = 0)
    {
        if (port == 0)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var psi = new ProcessStartInfo("moto_server", ["-H", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start moto_server (install it with `pip install 'moto[server]'`)");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string url = $"http://127.0.0.1:{port}";
        using var http = new HttpClient();
        for (int attempt = 0; attempt < 100; attempt++)
        {
            try
            {
                using var response = await http.GetAsync(url);
                return new MotoS3Server(process, url) { Port = port };
            }
            catch (HttpRequestException)
            {
                await Task.Delay(100);
            }
        }

        process.Kill(entireProcessTree: true);
        throw new InvalidOperationException("moto_server did not start within 10 s");
    }

    public async Task UploadFolderAsync(string bucket, string prefix, string folder)
    {
        foreach (string file in Directory.GetFiles(folder))
            await Client.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = bucket, Key = $"{prefix}/{Path.GetFileName(file)}", FilePath = file });
    }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        _disposed = true;
        Client.Dispose();
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
