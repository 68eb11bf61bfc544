using System.Runtime.ExceptionServices;
using System.Text;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// What the engine loop has produced for one request and the request's reader has not taken yet, in order: first the
/// admission notice, then the tokens, then the end (clean or with an error). One writer (the engine loop), one reader
/// (the request's front door).
/// </summary>
/// <remarks>
/// A client that stops reading leaves its output here once the socket's buffers are full, while the engine finishes the
/// request and frees its KV. So pending tokens are kept as numbers (id, log-probability, the top alternatives) and one
/// shared text buffer: about 10 bytes a token, plus 8 a top alternative, against several hundred as an object graph per
/// token or as the SSE text they become. The reader rebuilds each <see cref="TokenEvent"/> as it takes it. Invariants:
/// every pending-token list holds the same tokens from the same read position; <c>_topStarts</c> and <c>_textEnds</c>
/// are cumulative ends, so a token's alternatives and text are the ranges between its predecessor's ends and its own.
/// </remarks>
internal sealed class RequestOutput
{
    private readonly Lock _gate = new();
    private readonly List<int> _ids = [];
    private readonly List<float> _logprobs = [];
    private readonly List<int> _topEnds = [];
    private readonly List<(int Id, float Logprob)> _top = [];
    private readonly List<int> _textEnds = [];
    private readonly List<byte> _endings = [];
    private readonly StringBuilder _text = new();
    private int _read;
    private int? _admittedCachedTokens;

    /// <summary>The prompt's scores, written with the first token and handed out with it.</summary>
    private IReadOnlyList<Serving.Contracts.Generation.PromptTokenLogprob?>? _promptLogprobs;
    private IReadOnlyList<float>? _embedding;
    /// <summary>The prediction's counts, written with the last token and handed out with it.</summary>
    private PredictionTokens? _prediction;
    private bool _completed;
    private Exception? _error;
    private TaskCompletionSource? _waiter;

    private const byte IncompleteFlag = 0x80;
    private const int CompactAfter = 1024;

    /// <summary>Tokens written and not yet read.</summary>
    public int PendingTokens
    {
        get
        {
            lock (_gate)
                return _ids.Count - _read;
        }
    }

    /// <summary>The request entered the batch; <paramref name="cachedPromptTokens"/> of its prompt came from the prefix cache.</summary>
    public void Admitted(int cachedPromptTokens) => Add(() => _admittedCachedTokens = cachedPromptTokens);

    /// <summary>Appends one token; ignored once the output is complete.</summary>
    public void Write(TokenEvent token)
    {
        ArgumentNullException.ThrowIfNull(token);
        Add(() =>
        {
            _ids.Add(token.Token.Id);
            _logprobs.Add(token.Token.Logprob);
            _top.AddRange(token.Token.TopLogprobs);
            _topEnds.Add(_top.Count);
            _text.Append(token.TextDelta);
            _textEnds.Add(_text.Length);
            _endings.Add((byte)((byte)token.Finish | (token.OutputIncomplete ? IncompleteFlag : 0)));
            if (token.PromptLogprobs is { } scores)
                _promptLogprobs = scores;
            if (token.Embedding is { } embedding)
                _embedding = embedding;
            if (token.Prediction is { } prediction)
                _prediction = prediction;
        });
    }

    /// <summary>Ends the output: the reader sees <paramref name="error"/> (or a clean end) after the pending tokens. The first call wins.</summary>
    public void Complete(Exception? error = null) => Add(() => (_completed, _error) = (true, error));

    private void Add(Action change)
    {
        TaskCompletionSource? waiter;
        lock (_gate)
        {
            if (_completed)
                return;
            change();
            (waiter, _waiter) = (_waiter, null);
        }

        // The continuation runs on the thread pool (RunContinuationsAsynchronously): never the engine loop's socket write.
        waiter?.TrySetResult();
    }

    /// <summary>
    /// Waits until there is something to read: true when an update is pending, false after a clean end; throws the
    /// error the output was completed with once everything before it has been read.
    /// </summary>
    public async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (_admittedCachedTokens is not null || _read < _ids.Count)
                    return true;
                if (_completed)
                {
                    if (_error is not null)
                        ExceptionDispatchInfo.Throw(_error);
                    return false;
                }

                _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _waiter.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Takes the next update: the admission notice before any token, then the tokens in order.</summary>
    public bool TryRead(out GenerationUpdate update)
    {
        lock (_gate)
        {
            if (_admittedCachedTokens is int cached)
            {
                _admittedCachedTokens = null;
                update = GenerationUpdate.Admitted(cached);
                return true;
            }

            if (_read == _ids.Count)
            {
                update = null!;
                return false;
            }

            update = new GenerationUpdate(TakeToken());
            return true;
        }
    }

    private TokenEvent TakeToken()
    {
        int i = _read++;
        int topStart = i == 0 ? 0 : _topEnds[i - 1], textStart = i == 0 ? 0 : _textEnds[i - 1];
        var top = new (int Id, float Logprob)[_topEnds[i] - topStart];
        _top.CopyTo(topStart, top, 0, top.Length);
        string text = _text.ToString(textStart, _textEnds[i] - textStart);
        byte ending = _endings[i];
        var token = new TokenEvent(new SampledToken(_ids[i], _logprobs[i], top), text, (FinishReason)(ending & ~IncompleteFlag))
        {
            OutputIncomplete = (ending & IncompleteFlag) != 0,
            PromptLogprobs = _promptLogprobs,
            Embedding = _embedding,
            Prediction = (FinishReason)(ending & ~IncompleteFlag) != FinishReason.None ? _prediction : null,
        };
        _promptLogprobs = null;
        _embedding = null;
        if (_read == _ids.Count)
            Clear();
        else if (_read >= CompactAfter && 2 * _read >= _ids.Count)
            DropRead();
        return token;
    }

    /// <summary>
    /// Forgets the tokens already read when the reader keeps up but never quite empties the output, so a long stream
    /// holds what is unread rather than all it ever produced; half the lists at least go, so the copying is amortized.
    /// </summary>
    private void DropRead()
    {
        int topCut = _topEnds[_read - 1], textCut = _textEnds[_read - 1];
        _ids.RemoveRange(0, _read);
        _logprobs.RemoveRange(0, _read);
        _topEnds.RemoveRange(0, _read);
        _textEnds.RemoveRange(0, _read);
        _endings.RemoveRange(0, _read);
        _top.RemoveRange(0, topCut);
        _text.Remove(0, textCut);
        for (int j = 0; j < _ids.Count; j++)
        {
            _topEnds[j] -= topCut;
            _textEnds[j] -= textCut;
        }

        _read = 0;
    }

    private void Clear()
    {
        _read = 0;
        _ids.Clear();
        _logprobs.Clear();
        _topEnds.Clear();
        _top.Clear();
        _textEnds.Clear();
        _endings.Clear();
        _text.Clear();
    }
}
