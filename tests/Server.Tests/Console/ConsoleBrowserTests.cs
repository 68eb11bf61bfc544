using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Playwright;
using Serving.Authoring.Synthetic;

namespace Serving.Server.Tests.Console;

/// <summary>The web console in a real browser (Chromium through Playwright) against the real server.</summary>
public sealed class ConsoleBrowserTests(ConsoleFixture fixture) : IClassFixture<ConsoleFixture>
{
    private static readonly PageWaitForFunctionOptions Patiently = new() { Timeout = 60_000 };

    /// <summary>A fresh page (its own session storage) on the console, signed in with <paramref name="key"/>; it collects the page's errors.</summary>
    private async Task<(IPage Page, List<string> Errors)> OpenAsync(string key)
    {
        var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
                errors.Add(message.Text);
        };
        page.PageError += (_, error) => errors.Add(error);
        await page.GotoAsync(fixture.Server.Address.ToString());
        await page.Locator("#key-dialog").WaitForAsync(new() { State = WaitForSelectorState.Visible });
        await page.FillAsync("#key-input", key);
        await page.ClickAsync("#key-form button");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#adapter-table tbody tr').length > 0", null, Patiently);
        return (page, errors);
    }

    private static async Task ShowTabAsync(IPage page, string tab) => await page.ClickAsync($"#tabs button[data-tab='{tab}']");

    [Fact]
    public async Task Open_AdminKey_NoErrorsAndAdaptersListedWithTierAndShape()
    {
        var (page, errors) = await OpenAsync(ConsoleFixture.AdminKey);
        await ShowTabAsync(page, "adapters");

        var alpha = page.Locator("#adapter-table tr[data-adapter='alpha'] td");
        Assert.Equal("alpha", await alpha.Nth(0).TextContentAsync());
        Assert.Equal("8", await alpha.Nth(3).TextContentAsync());
        Assert.Contains(await alpha.Nth(6).TextContentAsync(), new[] { "device", "host", "disk" });
        Assert.True(await page.Locator("#register-form").IsVisibleAsync());
        Assert.Equal("admin", await page.EvaluateAsync<string>("() => document.getElementById('who').textContent"));
        Assert.Null(await page.EvaluateAsync<string?>("() => new URL(location.href).search.includes('key') ? location.href : null"));
        Assert.Empty(errors);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Playground_AdapterCompletion_StreamsIntoTheOutput()
    {
        var (page, errors) = await OpenAsync(ConsoleFixture.UserKey);
        await page.SelectOptionAsync("#play-target", "alpha");
        await page.FillAsync("#play-prompt", "Once upon a time");
        await page.FillAsync("#play-max-tokens", "12");

        await page.ClickAsync("#play-run");
        await page.WaitForFunctionAsync("() => document.getElementById('play-output').dataset.done === 'true'", null, Patiently);

        Assert.False(string.IsNullOrEmpty(await page.TextContentAsync("#play-output")));
        Assert.Contains("12 tokens", await page.TextContentAsync("#play-stats") ?? "", StringComparison.Ordinal);
        Assert.Contains("tokens/s", await page.TextContentAsync("#play-stats") ?? "", StringComparison.Ordinal);
        Assert.Empty(errors);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Playground_Auto_ShowsTheMixTheRouterPicked()
    {
        var (page, errors) = await OpenAsync(ConsoleFixture.UserKey);
        await page.SelectOptionAsync("#play-target", "auto");
        await page.FillAsync("#play-prompt", "Route me somewhere");
        await page.FillAsync("#play-max-tokens", "4");

        await page.ClickAsync("#play-run");
        await page.WaitForFunctionAsync("() => document.getElementById('play-output').dataset.done === 'true'", null, Patiently);

        Assert.Matches(@"^auto chose: (alpha|beta) × 1\.00$", await page.TextContentAsync("#play-mix-chosen") ?? "");
        Assert.Empty(errors);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Compare_TwoAdapters_DifferentOutputsStreamedTogether()
    {
        var (page, errors) = await OpenAsync(ConsoleFixture.UserKey);
        await ShowTabAsync(page, "compare");
        await page.FillAsync("#compare-prompt", "The weather today is");
        await page.Locator(".compare-target").Nth(0).SelectOptionAsync("alpha");
        await page.Locator(".compare-target").Nth(1).SelectOptionAsync("beta");

        await page.ClickAsync("#compare-run");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('.panel[data-done=true]').length === 2", null, Patiently);

        string? alpha = await page.Locator(".panel[data-target='alpha'] pre").TextContentAsync();
        string? beta = await page.Locator(".panel[data-target='beta'] pre").TextContentAsync();
        Assert.False(string.IsNullOrEmpty(alpha));
        Assert.NotEqual(alpha, beta);
        Assert.Contains("TTFT", await page.Locator(".panel[data-target='alpha'] p").TextContentAsync() ?? "", StringComparison.Ordinal);
        Assert.Contains("same engine batch", await page.TextContentAsync("#compare-batch") ?? "", StringComparison.Ordinal);
        Assert.Empty(errors);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Adapters_AdminRegistersFromAFolder_ItAppearsWithItsTier()
    {
        string folder = Path.Combine(fixture.Root, "registered", "gamma");
        SyntheticAdapterWriter.Write(folder, fixture.ModelDir, 4, 8, ["q_proj", "v_proj"], 23);
        var (page, errors) = await OpenAsync(ConsoleFixture.AdminKey);
        await ShowTabAsync(page, "adapters");

        await page.FillAsync("#register-id", "gamma");
        await page.FillAsync("#register-path", folder);
        await page.ClickAsync("#register-form button");
        await page.WaitForFunctionAsync("() => document.querySelector(\"#adapter-table tr[data-adapter='gamma']\") !== null", null, Patiently);

        var gamma = page.Locator("#adapter-table tr[data-adapter='gamma'] td");
        Assert.Equal("4", await gamma.Nth(3).TextContentAsync());
        Assert.Equal("q_proj, v_proj", await gamma.Nth(4).TextContentAsync());
        Assert.False(string.IsNullOrEmpty(await gamma.Nth(6).TextContentAsync()));
        Assert.Equal("Registered gamma", await page.TextContentAsync("#adapter-message"));
        Assert.Empty(errors);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Adapters_UserKey_NoAdminActionsAndTheServerRefusesThem()
    {
        var (page, errors) = await OpenAsync(ConsoleFixture.UserKey);
        await ShowTabAsync(page, "adapters");

        Assert.False(await page.Locator("#register-form").IsVisibleAsync());
        Assert.Equal(0, await page.Locator("#adapter-table button").CountAsync());
        Assert.Empty(errors);                       // before the refused call below, which the browser logs
        int status = await page.EvaluateAsync<int>(@"async args => (await fetch('/v1/load_lora_adapter', { method: 'POST',
            headers: { 'Authorization': 'Bearer ' + args[0], 'Content-Type': 'application/json' },
            body: JSON.stringify({ lora_name: 'alpha', lora_path: args[1] }) })).status",
            new[] { ConsoleFixture.UserKey, Path.Combine(fixture.Root, "store", "beta") });
        Assert.Equal(403, status);
        Assert.Equal("user · acme", await page.TextContentAsync("#who"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Playground_MarkupInPromptAndAdapterName_ShownAsTextNeverRun()
    {
        const string markup = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>";
        var (page, _) = await OpenAsync(ConsoleFixture.UserKey);
        await page.SelectOptionAsync("#play-target", "mix…");
        await page.FillAsync("#play-mix", "<script>window.__pwned=1</script>:1");
        await page.FillAsync("#play-prompt", markup);

        await page.ClickAsync("#play-run");
        await page.WaitForFunctionAsync("() => document.getElementById('play-error').textContent.length > 0", null, Patiently);

        Assert.Contains(markup, await page.TextContentAsync("#play-history li") ?? "", StringComparison.Ordinal);
        Assert.Contains("<script>", await page.TextContentAsync("#play-error") ?? "", StringComparison.Ordinal);
        Assert.Equal(0, await page.Locator("#play-history img, #play-history script, #play-error script").CountAsync());
        Assert.True(await page.EvaluateAsync<bool>("() => window.__pwned === undefined"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Live_ALoadRuns_ChartsUpdateEverySecond()
    {
        var (page, errors) = await OpenAsync(ConsoleFixture.AdminKey);
        await ShowTabAsync(page, "live");
        int pointsBefore = int.Parse(await page.GetAttributeAsync("#chart-tokens", "data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture);

        using var http = new HttpClient { BaseAddress = fixture.Server.Address };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ConsoleFixture.AdminKey);
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
                using (await http.PostAsJsonAsync("/v1/completions", new { model = i % 2 == 0 ? "alpha" : "beta", prompt = "load", max_tokens = 48, ignore_eos = true }))
                {
                }
        })).ToList();
        try
        {
            await page.WaitForFunctionAsync("() => Number(document.getElementById('live-tokens').textContent) > 0", null, Patiently);
            // The adapter table counts the pins on the device slots the running requests hold.
            await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#adapter-table tbody tr')].some(r => Number(r.children[9].textContent) > 0)",
                null, Patiently);
            // The README's picture: SERVING_CONSOLE_SCREENSHOT=docs/images/console-live.png runs the load longer and saves the page.
            if (Environment.GetEnvironmentVariable("SERVING_CONSOLE_SCREENSHOT") is { Length: > 0 } screenshot)
            {
                await page.SetViewportSizeAsync(1280, 820);
                await Task.Delay(TimeSpan.FromSeconds(20));
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        int pointsAfter = int.Parse(await page.GetAttributeAsync("#chart-tokens", "data-points") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(pointsAfter > pointsBefore, $"the chart gained no points ({pointsBefore} → {pointsAfter})");
        Assert.True(double.Parse(await page.GetAttributeAsync("#chart-tokens", "data-last") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 0);
        Assert.Empty(errors);
        await page.Context.CloseAsync();
    }
}
