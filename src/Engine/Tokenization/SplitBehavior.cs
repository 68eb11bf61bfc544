namespace Serving.Engine.Tokenization;

/// <summary>What a Split pre-tokenizer does with each delimiter it finds (the Rust library's <c>SplitDelimiterBehavior</c>).</summary>
public enum SplitBehavior
{
    /// <summary>Dropped.</summary>
    Removed,

    /// <summary>A piece of its own.</summary>
    Isolated,

    /// <summary>Joined to the piece before it.</summary>
    MergedWithPrevious,

    /// <summary>Joined to the piece after it.</summary>
    MergedWithNext,

    /// <summary>Adjacent delimiters joined into one piece.</summary>
    Contiguous,
}
