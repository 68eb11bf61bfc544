namespace Serving.Engine.Model;

public enum LogitsSelection
{
    /// <summary>One row per sequence: the logits after its last token (what generation needs).</summary>
    LastTokenPerSequence,

    /// <summary>One row per packed token (scoring, tests).</summary>
    AllTokens,
}
