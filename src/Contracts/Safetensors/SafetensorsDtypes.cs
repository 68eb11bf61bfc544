namespace Serving.Contracts.Safetensors;

public static class SafetensorsDtypes
{
    public static bool TryParse(string text, out SafetensorsDtype dtype)
    {
        switch (text)
        {
            case "F32": dtype = SafetensorsDtype.F32; return true;
            case "F16": dtype = SafetensorsDtype.F16; return true;
            case "BF16": dtype = SafetensorsDtype.BF16; return true;
            case "I64": dtype = SafetensorsDtype.I64; return true;
            case "I32": dtype = SafetensorsDtype.I32; return true;
            case "U8": dtype = SafetensorsDtype.U8; return true;
            default: dtype = default; return false;
        }
    }

    public static int ElementSize(SafetensorsDtype dtype) => dtype switch
    {
        SafetensorsDtype.F32 or SafetensorsDtype.I32 => 4,
        SafetensorsDtype.F16 or SafetensorsDtype.BF16 => 2,
        SafetensorsDtype.I64 => 8,
        SafetensorsDtype.U8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static string Name(SafetensorsDtype dtype) => dtype.ToString();
}
