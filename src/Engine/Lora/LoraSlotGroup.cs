namespace Serving.Engine.Lora;

/// <summary>The rows of a step that use one adapter slot, with the mixture weight each row gives it.</summary>
public sealed record LoraSlotGroup(int Slot, int[] Rows, float[] Weights);
