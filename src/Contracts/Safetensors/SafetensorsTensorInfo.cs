namespace Serving.Contracts.Safetensors;

/// <summary>One tensor entry of a safetensors header.</summary>
/// <param name="Name">Tensor name as written in the header.</param>
/// <param name="Dtype">Element type on disk.</param>
/// <param name="Shape">Dimensions, outermost first.</param>
/// <param name="DataOffset">Absolute byte offset of the first element in the file.</param>
/// <param name="ByteLength">Bytes occupied; always element count × element size.</param>
public sealed record SafetensorsTensorInfo(string Name, SafetensorsDtype Dtype, long[] Shape, long DataOffset, long ByteLength)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}
