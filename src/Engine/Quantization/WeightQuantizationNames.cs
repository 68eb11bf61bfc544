namespace Serving.Engine.Quantization;

/// <summary>The option's spelling of <see cref="WeightQuantization"/>: <c>none</c>, <c>int8</c> and <c>mxfp4</c>, as reported in <c>/v1/models</c>.</summary>
public static class WeightQuantizationNames
{
    /// <summary>Every accepted spelling, for messages.</summary>
    public static IReadOnlyList<string> All { get; } = ["none", "int8", "mxfp4"];

    /// <summary>Parses <paramref name="text"/> (case-insensitive; empty means none).</summary>
    /// <exception cref="ArgumentException">Naming the value and the accepted ones.</exception>
    public static WeightQuantization Parse(string? text) => (text ?? "").Trim().ToLowerInvariant() switch
    {
        "" or "none" => WeightQuantization.None,
        "int8" => WeightQuantization.Int8,
        "mxfp4" => WeightQuantization.Mxfp4,
        _ => throw new ArgumentException($"Serving:Model:Quantization '{text}' is not supported (expected one of {string.Join(", ", All)})"),
    };

    /// <summary>The option's spelling of <paramref name="quantization"/>.</summary>
    public static string Name(WeightQuantization quantization) => quantization switch
    {
        WeightQuantization.Int8 => "int8",
        WeightQuantization.Mxfp4 => "mxfp4",
        _ => "none",
    };
}
