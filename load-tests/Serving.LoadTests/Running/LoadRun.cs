using Serving.LoadTests.Clients;

namespace Serving.LoadTests.Running;

/// <summary>The outcomes of one bounded run and its wall time (first send to last answer).</summary>
internal sealed record LoadRun(IReadOnlyList<RequestOutcome> Outcomes, double WallSeconds);
