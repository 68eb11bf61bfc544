using System.Text.Encodings.Web;
using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>
/// The lexical pieces of compact JSON as automaton fragments: strings (free, bounded, by pattern, by format), numbers in a
/// range, and literal values. Generated text is always a subset of what a validator accepts: numbers have no exponent and
/// at most <see cref="MaxDigits"/> integer and fraction digits, formats use their strictest form (a date never names a
/// day its month lacks; February stops at 28).
/// </summary>
internal sealed class JsonTextFragments(ByteNfa nfa)
{
    /// <summary>Digits of an integer part or a fraction: 15 keeps every number exact in a double.</summary>
    public const int MaxDigits = 15;
    public const long MaxMagnitude = 999_999_999_999_999;

    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = false };

    /// <summary>Characters a JSON string may hold unescaped: all but '"', '\' and controls below U+0020.</summary>
    public static CodePointSet Unescaped { get; } = CodePointSet.All.Except(CodePointSet.Of([(0, 0x1F), ('"', '"'), ('\\', '\\')]));

    /// <summary>The compact JSON text of <paramref name="value"/>, exactly as the output will carry it.</summary>
    public static string Serialize(JsonElement value) => JsonSerializer.Serialize(value, Compact);

    public NfaFragment Literal(JsonElement value) => nfa.Literal(Serialize(value));

    /// <summary>A JSON string whose decoded value has <paramref name="min"/> to <paramref name="max"/> characters (null: any).</summary>
    public NfaFragment String(int min, int? max) => Quoted(nfa.Repeat(AnyCharacter, min, max));

    /// <summary>A JSON string whose decoded value fully matches <paramref name="pattern"/>.</summary>
    public NfaFragment String(RegexNode pattern) => Quoted(pattern.Build(nfa, Characters));

    /// <summary>
    /// A JSON string in <paramref name="format"/> (OpenAI's list: date, time, date-time, duration, email, hostname, ipv4,
    /// ipv6, uuid), or null for a format not supported. Each is a subset of its RFC's: what it writes always validates.
    /// </summary>
    public NfaFragment? Format(string format) => format switch
    {
        "date" => Quoted(Date()),
        "time" => Quoted(Time()),
        "date-time" => Quoted(nfa.Sequence(Date(), nfa.Literal("T"), Time())),
        "uuid" => Quoted(Uuid()),
        "duration" => Quoted(Two(Duration)),
        "email" => Quoted(Two(Email)),
        "hostname" => Quoted(Two(Hostname)),
        "ipv4" => Quoted(Two(Ipv4)),
        "ipv6" => Quoted(Two(Ipv6)),
        _ => null,
    };

    /// <summary>RFC 3339's ISO 8601 duration (appendix A), at most 4 digits a component.</summary>
    private const string Duration = "P(([0-9]{1,4}D|[0-9]{1,4}M([0-9]{1,4}D)?|[0-9]{1,4}Y([0-9]{1,4}M([0-9]{1,4}D)?)?)(T([0-9]{1,4}H([0-9]{1,4}M([0-9]{1,4}S)?)?|[0-9]{1,4}M([0-9]{1,4}S)?|[0-9]{1,4}S))?"
        + "|T([0-9]{1,4}H([0-9]{1,4}M([0-9]{1,4}S)?)?|[0-9]{1,4}M([0-9]{1,4}S)?|[0-9]{1,4}S)|[0-9]{1,4}W)";

    /// <summary>Lower-case DNS labels (RFC 1123), 1–4 of them, each at most 20 characters: well inside 253.</summary>
    private const string Hostname = "[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?){0,3}";

    /// <summary>A dot-atom local part and a domain with a letters-only top level (RFC 5321's common form).</summary>
    private const string Email = "[a-z0-9]{1,16}([._+-][a-z0-9]{1,16}){0,3}@[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?){0,2}\\.[a-z]{2,6}";

    private const string Ipv4Octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";

    private const string Ipv4 = Ipv4Octet + "(\\." + Ipv4Octet + "){3}";

    /// <summary>The full form: eight groups of 1–4 lower-case hexadecimal digits (no "::" compression).</summary>
    private const string Ipv6 = "[0-9a-f]{1,4}(:[0-9a-f]{1,4}){7}";

    /// <summary>
    /// One character of <paramref name="set"/> inside a JSON string: literally where JSON allows it, else by its escape
    /// (<c>\"</c>, <c>\\</c>, <c>\n</c>, <c>\u001f</c>...).
    /// </summary>
    public NfaFragment Characters(CodePointSet set)
    {
        var options = new List<NfaFragment> { nfa.Chars(set.Intersect(Unescaped)) };
        foreach (var (lo, hi) in set.Intersect(Unescaped.Complement()).Ranges)
            for (int c = lo; c <= hi; c++)
                options.Add(nfa.Literal(Escape(c)));
        return nfa.Alternation(options);
    }

    /// <summary>
    /// An integer in [<paramref name="lo"/>, <paramref name="hi"/>] (null: unbounded, then at most <see cref="MaxDigits"/>
    /// digits), written canonically (no leading zeros, no "-0").
    /// </summary>
    public NfaFragment Integer(long? lo, long? hi)
    {
        long a = Math.Max(lo ?? -MaxMagnitude, -MaxMagnitude), b = Math.Min(hi ?? MaxMagnitude, MaxMagnitude);
        var options = new List<NfaFragment>();
        if (b >= 0)
            options.Add(NonNegative(Math.Max(a, 0), b));
        if (a < 0)
            options.Add(nfa.Sequence(nfa.Literal("-"), NonNegative(Math.Max(1, -b), -a)));
        return nfa.Alternation(options);
    }

    /// <summary>
    /// A number in [<paramref name="lo"/>, <paramref name="hi"/>] (integral inclusive bounds, null: unbounded): an integer
    /// in range, or a fraction whose whole interval between integers lies in range.
    /// </summary>
    /// <remarks>At most <c>fractionDigits</c> digits after the point (0: integers only).</remarks>
    public NfaFragment Number(long? lo, long? hi, int fractionDigits = MaxDigits)
    {
        long a = Math.Max(lo ?? -MaxMagnitude, -MaxMagnitude), b = Math.Min(hi ?? MaxMagnitude, MaxMagnitude);
        var options = new List<NfaFragment> { Integer(a, b) };
        if (fractionDigits == 0)
            return Integer(a, b);
        NfaFragment Fraction() => nfa.Sequence(nfa.Literal("."), nfa.Repeat(Digit, 1, fractionDigits));
        if (b - 1 >= Math.Max(a, 0))
            options.Add(nfa.Sequence(NonNegative(Math.Max(a, 0), b - 1), Fraction()));    // k.f in [k, k + 1)
        if (-a - 1 >= Math.Max(-b, 0))
            options.Add(nfa.Sequence(nfa.Literal("-"), NonNegative(Math.Max(-b, 0), -a - 1), Fraction()));   // −k.f in (−k − 1, −k]
        return nfa.Alternation(options);
    }

    /// <summary>
    /// The multiples of <paramref name="a"/> · 10^−<paramref name="d"/> in [<paramref name="lo"/>, <paramref name="hi"/>]
    /// (inclusive, null: unbounded): each one written out when the bounds hold at most <see cref="MaxListedMultiples"/>;
    /// else, with no bounds or only a lower bound of 0, the digits read by a remainder automaton (the integer part's
    /// digits, then exactly <paramref name="d"/> fraction digits, the scaled value's remainder modulo <paramref name="a"/>
    /// carried digit by digit; at most <see cref="MaxRemainders"/> remainders). Null when neither applies.
    /// </summary>
    public NfaFragment? Multiples(long a, int d, long? lo, long? hi)
    {
        var scale = (Int128)Pow10(d);
        if (lo is long l && hi is long h)
        {
            Int128 first = CeilingDivide(l * scale, a), last = FloorDivide(h * scale, a);
            if (last - first < MaxListedMultiples)
            {
                var listed = new List<NfaFragment>();
                for (Int128 n = first; n <= last; n++)
                    listed.Add(nfa.Literal(Decimal(n * a, d)));
                return nfa.Alternation(listed);
            }
        }

        if (hi is not null || lo is not (null or 0) || a > MaxRemainders)
            return null;
        var options = new List<NfaFragment> { RemainderDigits(a, d, (byte)'0') };
        if (lo is null)
            options.Add(nfa.Sequence(nfa.Literal("-"), RemainderDigits(a, d, (byte)'1')));          // never "-0"
        return nfa.Alternation(options);
    }

    /// <summary>Multiples <see cref="Multiples"/> writes out one by one at most.</summary>
    public const int MaxListedMultiples = 1_000;

    /// <summary>The largest scaled divisor the remainder automaton takes (states: digits × remainders).</summary>
    public const int MaxRemainders = 1_000;

    /// <summary>
    /// Non-negative decimals whose integer part (no leading zeros, at most <see cref="MaxDigits"/> digits, starting with
    /// a digit from <paramref name="lowestFirst"/>) and exactly <paramref name="d"/> fraction digits spell a multiple of
    /// <paramref name="a"/>.
    /// </summary>
    private NfaFragment RemainderDigits(long a, int d, byte lowestFirst)
    {
        nfa.MayHaveDeadEnds();                            // a 15-digit prefix may have no digit left that reaches remainder 0
        int end = nfa.NewState();
        int start = nfa.NewState();
        // integer[len - 1][r]: len digits read, remainder r; a leading 0 stands alone.
        var integer = new int[MaxDigits][];
        for (int len = 0; len < MaxDigits; len++)
            integer[len] = Enumerable.Range(0, (int)a).Select(_ => nfa.NewState()).ToArray();
        var fraction = new int[d][];
        for (int k = 0; k < d; k++)
            fraction[k] = Enumerable.Range(0, (int)a).Select(_ => nfa.NewState()).ToArray();
        int zero = nfa.NewState();
        for (byte c = lowestFirst; c <= '9'; c++)
            nfa.Edge(start, c, c, c == '0' ? zero : integer[0][(c - '0') % a]);
        long shift = (long)(Pow10(d) % a);
        void Leave(int state, int r)
        {
            if (r * shift % a == 0)
                nfa.Epsilon(state, end);                   // the integer part alone is a multiple: "2" as well as "2.00"
            if (d == 0)
                return;

            int point = nfa.NewState();
            nfa.Edge(state, (byte)'.', (byte)'.', point);
            for (byte c = (byte)'0'; c <= '9'; c++)
                nfa.Edge(point, c, c, fraction[0][(r * 10 + c - '0') % a]);
        }

        Leave(zero, 0);
        for (int len = 0; len < MaxDigits; len++)
            for (int r = 0; r < a; r++)
            {
                Leave(integer[len][r], r);
                if (len + 1 < MaxDigits)
                    for (byte c = (byte)'0'; c <= '9'; c++)
                        nfa.Edge(integer[len][r], c, c, integer[len + 1][(int)((r * 10L + c - '0') % a)]);
            }

        for (int k = 0; k < d; k++)
            for (int r = 0; r < a; r++)
                if (k + 1 < d)
                    for (byte c = (byte)'0'; c <= '9'; c++)
                        nfa.Edge(fraction[k][r], c, c, fraction[k + 1][(int)((r * 10L + c - '0') % a)]);
                else if (r == 0)
                    nfa.Epsilon(fraction[k][r], end);
        return new NfaFragment(start, end);
    }

    /// <summary><paramref name="scaled"/> · 10^−<paramref name="d"/> in canonical decimal (no trailing fraction zeros).</summary>
    private static string Decimal(Int128 scaled, int d)
    {
        var scale = (Int128)Pow10(d);
        Int128 magnitude = scaled < 0 ? -scaled : scaled;
        string whole = (magnitude / scale).ToString(System.Globalization.CultureInfo.InvariantCulture);
        string fraction = d == 0 ? "" : (magnitude % scale).ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(d, '0').TrimEnd('0');
        return (scaled < 0 ? "-" : "") + whole + (fraction.Length > 0 ? "." + fraction : "");
    }

    private static Int128 FloorDivide(Int128 x, Int128 y) => x / y - (x % y < 0 ? 1 : 0);

    private static Int128 CeilingDivide(Int128 x, Int128 y) => x / y + (x % y > 0 ? 1 : 0);

    private NfaFragment Digit() => nfa.ByteRange((byte)'0', (byte)'9');

    /// <summary>k in [lo, hi], 0 ≤ lo, in canonical decimal: one fixed-width range per digit count.</summary>
    private NfaFragment NonNegative(long lo, long hi)
    {
        var options = new List<NfaFragment>();
        for (int digits = 1; digits <= MaxDigits + 1; digits++)
        {
            long first = digits == 1 ? 0 : Pow10(digits - 1), last = Pow10(digits) - 1;
            long from = Math.Max(lo, first), to = Math.Min(hi, last);
            if (from <= to)
                options.Add(FixedWidth(from.ToString(System.Globalization.CultureInfo.InvariantCulture), to.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        return nfa.Alternation(options);
    }

    private static long Pow10(int n)
    {
        long p = 1;
        for (int i = 0; i < n; i++)
            p *= 10;
        return p;
    }

    /// <summary>Every digit string of <paramref name="a"/>'s length between <paramref name="a"/> and <paramref name="b"/>.</summary>
    private NfaFragment FixedWidth(string a, string b)
    {
        if (a.Length == 0)
            return nfa.Empty();
        if (a[0] == b[0])
            return nfa.Sequence(nfa.ByteRange((byte)a[0], (byte)a[0]), FixedWidth(a[1..], b[1..]));
        string rest = a[1..];
        if (rest.All(c => c == '0') && b[1..].All(c => c == '9'))
            return nfa.Sequence(nfa.ByteRange((byte)a[0], (byte)b[0]), nfa.Repeat(Digit, rest.Length, rest.Length));
        var options = new List<NfaFragment> { nfa.Sequence(nfa.ByteRange((byte)a[0], (byte)a[0]), FixedWidth(rest, new string('9', rest.Length))) };
        if (a[0] + 1 <= b[0] - 1)
            options.Add(nfa.Sequence(nfa.ByteRange((byte)(a[0] + 1), (byte)(b[0] - 1)), nfa.Repeat(Digit, rest.Length, rest.Length)));
        options.Add(nfa.Sequence(nfa.ByteRange((byte)b[0], (byte)b[0]), FixedWidth(new string('0', rest.Length), b[1..])));
        return nfa.Alternation(options);
    }

    private NfaFragment Quoted(NfaFragment inner) => nfa.Sequence(nfa.Literal("\""), inner, nfa.Literal("\""));

    private NfaFragment AnyCharacter() => nfa.Alternation(nfa.Chars(Unescaped),
        nfa.Sequence(nfa.Literal("\\"), nfa.Alternation(nfa.Chars(CodePointSet.Of([('"', '"'), ('\\', '\\'), ('/', '/'), ('b', 'b'), ('f', 'f'), ('n', 'n'), ('r', 'r'), ('t', 't')])),
            nfa.Sequence(nfa.Literal("u"), NonSurrogateHex()))));

    /// <summary>Four hex digits naming a code unit outside U+D800–U+DFFF (a lone surrogate escape is not a character).</summary>
    private NfaFragment NonSurrogateHex()
    {
        var hex = CodePointSet.Of([('0', '9'), ('a', 'f'), ('A', 'F')]);
        NfaFragment Hex() => nfa.Chars(hex);
        return nfa.Alternation(
            nfa.Sequence(nfa.Chars(CodePointSet.Of([('0', '9'), ('a', 'c'), ('A', 'C'), ('e', 'f'), ('E', 'F')])), Hex(), Hex(), Hex()),
            nfa.Sequence(nfa.Chars(CodePointSet.Of([('d', 'd'), ('D', 'D')])), nfa.Chars(CodePointSet.Range('0', '7')), Hex(), Hex()));
    }

    private static string Escape(int c) => c switch
    {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\b' => "\\b",
        '\f' => "\\f",
        _ => $"\\u{c:x4}",
    };

    private NfaFragment Digits(int count) => nfa.Repeat(Digit, count, count);

    private NfaFragment Two(string pattern) => RegexParser.Parse(pattern, "format").Build(nfa, nfa.Chars);

    private NfaFragment Date() => nfa.Sequence(nfa.ByteRange((byte)'1', (byte)'2'), Digits(3), nfa.Literal("-"),
        Two("(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8])"));

    private NfaFragment Time() => Two("([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])");

    private NfaFragment Uuid() => Two("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
}
