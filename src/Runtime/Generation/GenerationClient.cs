using System.Runtime.CompilerServices;
using Serving.Batching;
using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// The runtime's generator, the one entry point of every front door: queues a <see cref="GenerationRequest"/> with the
/// engine loop and yields its tokens as they are produced. Failures are <see cref="RequestFailedException"/>s.
/// </summary>
public sealed class GenerationClient(EngineWorker worker, RequestSeeds seeds, Serving.Runtime.Observability.ServingMetrics metrics, ILogger<GenerationClient> logger)
{
    /// <summary>Whether a request's <see cref="GenerationRequest.Priority"/> orders it (priority scheduling); else it must be 0.</summary>
    public bool SchedulesByPriority => worker.SchedulesByPriority;

    /// <param name="request">What to generate.</param>
    /// <param name="cancellationToken">The caller going away; the sequence leaves the batch at the next step.</param>
    public async IAsyncEnumerable<TokenEvent> SubmitAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var (prompt, sampling, adapters, tenant, deadline, salt, priority, prediction) = request;
        sampling = seeds.Complete(sampling);
        long arrived = System.Diagnostics.Stopwatch.GetTimestamp(), last = 0;
        int generated = 0, cachedPromptTokens = 0;
        using var activity = Serving.Runtime.Observability.ServingTracing.Source.StartActivity("generate");
        var arrivedAt = DateTimeOffset.UtcNow;
        DateTimeOffset? admittedAt = null, firstTokenAt = null;
        activity?.SetTag("serving.tenant", tenant);
        activity?.SetTag("serving.adapters", adapters.ToString());
        activity?.SetTag("serving.prompt_tokens", prompt.Count);
        using var phases = new Serving.Runtime.Observability.TracePhases(activity, () => (arrivedAt, admittedAt, firstTokenAt, generated));
        var output = new RequestOutput();

        // Whenever the consumer stops reading (a failed write to a vanished client, an exception, an early break), the engine
        // drops the sequence at its next step instead of generating for nobody.
        using var abandoned = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stopOnExit = new CancelOnDispose(abandoned);
        EnqueueOutcome outcome;
        try
        {
            outcome = worker.TryEnqueue(new GenerationCommand(prompt, sampling, adapters, output, abandoned.Token, tenant, deadline, salt, priority, prediction));
        }
        catch (ArgumentException ex)
        {
            throw new RequestFailedException(RequestFailure.Invalid, ex.Message);
        }

        switch (outcome)
        {
            case EnqueueOutcome.Closed:
                throw new RequestFailedException(RequestFailure.Unavailable, "the engine is not running (starting up or shutting down)");
            case EnqueueOutcome.TooManyRequests:
                throw new RequestFailedException(RequestFailure.Overloaded, "the request queue is full; retry later");
            case EnqueueOutcome.TooManyTokens:
                throw new RequestFailedException(RequestFailure.Overloaded, "too many prompt tokens are queued; retry later");
        }

        long admittedTimestamp = 0, firstTimestamp = 0;
        var finished = FinishReason.None;
        try
        {
            while (true)
            {
                GenerationUpdate update;
                try
                {
                    if (!await output.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                        yield break;
                    if (!output.TryRead(out update!))
                        continue;
                }
                catch (ArgumentException ex)
                {
                    throw new RequestFailedException(RequestFailure.Invalid, ex.Message);
                }
                catch (AdapterStore.AdapterStoreException ex)
                {
                    throw ex.Failure switch
                    {
                        AdapterStore.AdapterStoreFailure.Unavailable => new RequestFailedException(RequestFailure.Unavailable, $"adapter source unavailable: {ex.Message}", "model"),
                        AdapterStore.AdapterStoreFailure.NotFound => new RequestFailedException(RequestFailure.NotFound, ex.Message, "model"),
                        _ => new RequestFailedException(RequestFailure.Unprocessable, ex.Message, "model"),
                    };
                }
                catch (TimeoutException ex)
                {
                    throw new RequestFailedException(RequestFailure.TimedOut, $"the request exceeded its time limit: {ex.Message}");
                }
                catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new RequestFailedException(RequestFailure.Unavailable, ex.Message);
                }
                catch (Exception ex) when (Engine.Constraints.ConstraintException.Within(ex) is { } constraint)
                {
                    // The tenant's constraint outgrew its automaton's bounds while generating (an ambiguous grammar whose
                    // call stacks multiply): the request's doing, not the server's.
                    throw new RequestFailedException(RequestFailure.Invalid, $"the output constraint cannot continue: {constraint.Message}");
                }
                catch (Exception ex) when (ex is not OperationCanceledException and not RequestFailedException)
                {
                    // The engine failed this request alone (its rows were rerun apart from the batch's): a server fault, with
                    // its cause, rather than an escaping exception that REST streams end without an error event for and gRPC
                    // reports as UNKNOWN with no detail.
                    throw new RequestFailedException(RequestFailure.Failed, $"the engine failed this request: {ex.Message}");
                }

                if (update.Token is null)
                {
                    if (admittedAt is null)
                    {
                        admittedAt = DateTimeOffset.UtcNow;
                        admittedTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
                        cachedPromptTokens = update.CachedPromptTokens;
                        activity?.SetTag("serving.cached_prompt_tokens", cachedPromptTokens);
                    }

                    continue;
                }

                firstTokenAt ??= DateTimeOffset.UtcNow;
                long now = System.Diagnostics.Stopwatch.GetTimestamp();
                double gap = System.Diagnostics.Stopwatch.GetElapsedTime(last == 0 ? arrived : last, now).TotalSeconds;
                (last == 0 ? metrics.TimeToFirstToken : metrics.TimePerOutputToken).Record(gap);
                if (last == 0)
                {
                    firstTimestamp = now;
                    metrics.Vllm.FirstToken(gap);
                }
                else
                    metrics.Vllm.InterToken(gap);
                last = now;
                metrics.AddGeneratedTokens(1);
                generated++;
                if (update.Token.Finish != FinishReason.None)
                {
                    finished = update.Token.Finish;
                    activity?.SetTag("serving.finish_reason", update.Token.Finish.ToString());
                    logger.LogInformation("Generated {Tokens} tokens for tenant '{Tenant}' with {Adapters} ({PromptTokens} prompt tokens): {Finish} after {Seconds:F3} s",
                        generated, tenant, adapters, prompt.Count, update.Token.Finish, System.Diagnostics.Stopwatch.GetElapsedTime(arrived).TotalSeconds);
                }

                yield return generated == 1 ? update.Token with { CachedPromptTokens = cachedPromptTokens } : update.Token;
            }
        }
        finally
        {
            if (finished != FinishReason.None)
                metrics.Vllm.Finished(finished, prompt.Count, generated, sampling.MaxTokens, arrived, admittedTimestamp == 0 ? arrived : admittedTimestamp, firstTimestamp, last);
            else
                metrics.Vllm.Aborted(prompt.Count, generated, sampling.MaxTokens);
        }
    }
}