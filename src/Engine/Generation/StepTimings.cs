namespace Serving.Engine.Generation;

/// <summary>
/// Where one <see cref="GenerationStepper.Run"/> spent its time. On an asynchronous device (CUDA) <see cref="Forward"/> is
/// the host launching the step's kernels and <see cref="LogitsToHost"/> the wait for the device to finish them and copy
/// the logits back, so a step whose wait is near zero is bound by the host; on the CPU the forward pass computes
/// everything and the logits are read in place (no wait).
/// </summary>
/// <param name="Forward">The model's forward call.</param>
/// <param name="LogitsToHost">Waiting for the device and copying the logits to host memory.</param>
/// <param name="Sampling">Sampling each row's token, detokenising it and matching stop conditions.</param>
/// <param name="MaskWork">Computing the token masks of constrained rows that were not cached, on a worker thread while the
/// forward pass ran.</param>
/// <param name="MaskWait">The part of <paramref name="MaskWork"/> the step waited for after its forward pass: what
/// structured output added to the critical path.</param>
public readonly record struct StepTimings(TimeSpan Forward, TimeSpan LogitsToHost, TimeSpan Sampling, TimeSpan MaskWork = default, TimeSpan MaskWait = default);
