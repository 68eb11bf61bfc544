namespace Serving.Authoring.Training;

/// <summary>One prompt/completion pair, tokenized: the loss covers the completion tokens only.</summary>
internal sealed record TrainingExample(int[] Prompt, int[] Completion)
{
    public int[] Tokens => [.. Prompt, .. Completion];
}
