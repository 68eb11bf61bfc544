namespace Serving.Authoring.Training;

/// <summary>One prompt/completion pair, tokenized: the loss covers the completion tokens only.</summary>
public sealed record TrainingExample(int[] Prompt, int[] Completion)
{
    public int[] Tokens => [.. Prompt, .. Completion];
}
