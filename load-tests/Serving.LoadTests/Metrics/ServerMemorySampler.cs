using System.Diagnostics;

namespace Serving.LoadTests.Metrics;

/// <summary>Scrapes the server's memory figures every <c>interval</c> in the background until disposed.</summary>
internal sealed class ServerMemorySampler : IAsyncDisposable
{
    private readonly HttpClient _http;
    private readonly TimeSpan _interval;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<ServerMemorySample> _samples = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ServerMemorySampler(HttpClient http, TimeSpan interval)
    {
        _http = http;
        _interval = interval;
        _loop = Task.Run(LoopAsync);
    }

    public double ElapsedSeconds => _clock.Elapsed.TotalSeconds;

    public IReadOnlyList<ServerMemorySample> Samples
    {
        get
        {
            lock (_samples)
                return [.. _samples];
        }
    }

    /// <summary>One scrape now (also recorded), or null when the server does not answer.</summary>
    public async Task<ServerMemorySample?> SampleAsync(CancellationToken cancellationToken)
    {
        try
        {
            string text = await _http.GetStringAsync("/metrics", cancellationToken);
            var sample = ServerMemorySample.From(_clock.Elapsed.TotalSeconds, PrometheusText.Parse(text));
            lock (_samples)
                _samples.Add(sample);
            return sample;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            await SampleAsync(_stop.Token);
            try
            {
                await Task.Delay(_interval, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
