namespace Serving.Contracts.Generation;

public enum FinishReason
{
    None,

    /// <summary>An EOS/stop token or a stop string ended the output (OpenAI "stop").</summary>
    Stop,

    /// <summary>max_tokens or the context limit was reached (OpenAI "length").</summary>
    Length,
}
