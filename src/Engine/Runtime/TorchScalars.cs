using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Runtime;

/// <summary>
/// The only place the engine makes a TorchSharp <see cref="Scalar"/>, and the tensor arithmetic that needs one.
/// <para>
/// A Scalar is a finalizable wrapper whose native pointer TorchSharp hands to libtorch without keeping the wrapper alive
/// through the call. A temporary one — every implicit conversion (<c>x * 0.5</c>, <c>fill_(0)</c>, <c>pow(2)</c>) and the
/// <c>alpha = 1</c> that TorchSharp's own <c>x + y</c>, <c>add(y)</c> and <c>add_(y)</c> make — is garbage from the moment
/// its pointer is read, so a collection and finalizer pass on another thread during the call frees what libtorch is about
/// to read. On a loaded machine it happens: CI failed with "Expected false to be true ... toFloat" from <c>x + residual</c>
/// while a server trained its demo adapters beside other tests (dotnet/TorchSharp#1434 and #1496 track the library side).
/// </para>
/// <para>
/// So a constant lives here for the process's life (never collected), and a value made per call is held by a
/// <c>using</c> until the call has returned. <c>TorchScalarUseTests</c> reads the IL of the Serving assemblies and fails on
/// any other Scalar conversion, or on a call to a TorchSharp member that makes a temporary Scalar inside.
/// </para>
/// </summary>
public static class TorchScalars
{
    private static readonly Scalar Zero = 0;
    private static readonly Scalar One = 1;
    private static readonly Scalar Two = 2;

    /// <summary><c>a + b</c> as a new tensor.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>a += alpha · b</c>; returns a.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b, double alpha = 1)
    {
        LibtorchCallCount.InPlace();
        if (alpha == 1)
            return a.add_(b, One);
        using var s = alpha.ToScalar();
        return a.add_(b, s);
    }

    /// <summary><c>a + value</c> as a new tensor.</summary>
    public static Tensor Plus(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.add(s, One);
    }

    /// <summary><c>a += value</c>; returns a.</summary>
    public static Tensor PlusInPlace(this Tensor a, double value)
    {
        LibtorchCallCount.InPlace();
        using var s = value.ToScalar();
        return a.add_(s, One);
    }

    /// <summary><c>a · value</c> as a new tensor.</summary>
    public static Tensor Times(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.mul(s);
    }

    /// <summary><c>a ·= value</c>; returns a.</summary>
    public static Tensor TimesInPlace(this Tensor a, double value)
    {
        LibtorchCallCount.InPlace();
        using var s = value.ToScalar();
        return a.mul_(s);
    }

    /// <summary>Each element of a clamped to [min, max] in place; returns a.</summary>
    public static Tensor ClampInPlace(this Tensor a, double min, double max)
    {
        LibtorchCallCount.InPlace();
        using var low = min.ToScalar();
        using var high = max.ToScalar();
        return a.clamp_(low, high);
    }

    /// <summary><c>a ⊙= b</c> (broadcast); returns a.</summary>
    public static Tensor TimesInPlace(this Tensor a, Tensor b)
    {
        LibtorchCallCount.InPlace();
        return a.mul_(b);
    }

    /// <summary><c>a += m1 · m2</c> (addmm, beta 1) scaled by <paramref name="alpha"/>; returns a.</summary>
    public static Tensor PlusMatrixProductInPlace(this Tensor a, Tensor m1, Tensor m2, float alpha = 1)
    {
        LibtorchCallCount.InPlace();
        return a.addmm_(m1, m2, beta: 1, alpha: alpha);
    }

    /// <summary><c>a.index_copy_(dim, index, source)</c>: <c>a[index[i]] = source[i]</c> along dim; returns a.</summary>
    public static Tensor IndexCopyInPlace(this Tensor a, long dim, Tensor index, Tensor source)
    {
        LibtorchCallCount.InPlace();
        return a.index_copy_(dim, index, source);
    }

    /// <summary><c>a / value</c> as a new tensor.</summary>
    public static Tensor DividedBy(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.div(s);
    }

    /// <summary><c>a²</c> element-wise, as a new tensor.</summary>
    public static Tensor Squared(this Tensor a) => a.pow(Two);

    /// <summary>Every element of a set to <paramref name="value"/>; returns a.</summary>
    public static Tensor FillWith(this Tensor a, double value)
    {
        LibtorchCallCount.InPlace();
        if (value == 0)
            return a.fill_(Zero);
        using var s = value.ToScalar();
        return a.fill_(s);
    }

    /// <summary><c>a += value · t1 ⊙ t2</c> (addcmul); returns a.</summary>
    public static Tensor PlusProductInPlace(this Tensor a, Tensor t1, Tensor t2, double value)
    {
        LibtorchCallCount.InPlace();
        using var s = value.ToScalar();
        return a.addcmul_(t1, t2, s);
    }

    /// <summary><c>a += value · t1 / t2</c> (addcdiv); returns a.</summary>
    public static Tensor PlusQuotientInPlace(this Tensor a, Tensor t1, Tensor t2, double value)
    {
        LibtorchCallCount.InPlace();
        using var s = value.ToScalar();
        return a.addcdiv_(t1, t2, s);
    }

    /// <summary><c>a.index_add_(dim, index, source)</c> with alpha 1: <c>a[index[i]] += source[i]</c> along dim; returns a.</summary>
    public static Tensor IndexPlusInPlace(this Tensor a, long dim, Tensor index, Tensor source)
    {
        LibtorchCallCount.InPlace();
        return a.index_add_(dim, index, source, One);
    }

    /// <summary><c>[0, 1, …, count − 1]</c>.</summary>
    public static Tensor Range(long count, ScalarType dtype, Device? device = null)
    {
        using var stop = count.ToScalar();
        return arange(Zero, stop, One, dtype, device);
    }
}
