namespace Serving.AdapterStore;

/// <summary>What an adapter version's files say of it: PEFT rank and alpha, the modules it targets, the weights' size.</summary>
public sealed record AdapterDetails(int Rank, double Alpha, IReadOnlyList<string> TargetModules, long SizeBytes);
