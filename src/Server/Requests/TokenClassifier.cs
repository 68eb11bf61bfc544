using Microsoft.Extensions.Options;
using Serving.Runtime.Hosting;

namespace Serving.Server.Requests;

/// <summary>
/// The reranker made of two tokens' logits (<see cref="ScoreOptions"/>): their ids, looked up in the loaded model's vocabulary
/// when the server starts (a token it lacks stops start-up naming it), and a pair's score from its final hidden state.
/// Started after the model host, whose model it reads.
/// </summary>
internal sealed class TokenClassifier(IOptions<ScoreOptions> options, ModelHost host) : IHostedService
{
    /// <summary>The negative and positive token ids; null when scores are embeddings' cosines.</summary>
    public (int Negative, int Positive)? Tokens { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var names = options.Value.Tokens;
        if (names.Count == 0)
            return Task.CompletedTask;
        int Id(string token) => host.Served.TokenId(token)
            ?? throw new InvalidOperationException($"--score-tokens: '{token}' is not a token of this model's vocabulary (tokenizer.json spells its entries, e.g. 'yes' or 'Ġyes')");
        Tokens = (Id(names[0]), Id(names[1]));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>P(positive) among the two tokens after <paramref name="hidden"/>: <c>σ(z₊ − z₋)</c>.</summary>
    public double Score(float[] hidden)
    {
        var (negative, positive) = Tokens ?? throw new InvalidOperationException("no classifier tokens are configured");
        var z = host.Served.Logits(hidden, [negative, positive]);
        return 1 / (1 + Math.Exp(z[0] - z[1]));
    }
}
