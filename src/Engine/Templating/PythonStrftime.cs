using System.Globalization;
using System.Text;

namespace Serving.Engine.Templating;

/// <summary>Python's <c>strftime</c> in the C locale, for <c>strftime_now</c> (Llama 3.x templates print today's date).</summary>
internal static class PythonStrftime
{
    public static string Format(DateTimeOffset t, string format)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }

            char code = format[++i];
            bool noPad = code == '-' && i + 1 < format.Length;
            if (noPad)
                code = format[++i];
            string Pad(int value, int width) => noPad ? value.ToString(c) : value.ToString(new string('0', width), c);
            sb.Append(code switch
            {
                'd' => Pad(t.Day, 2),
                'e' => noPad ? t.Day.ToString(c) : t.Day.ToString(c).PadLeft(2),
                'm' => Pad(t.Month, 2),
                'Y' => t.Year.ToString(c),
                'y' => Pad(t.Year % 100, 2),
                'H' => Pad(t.Hour, 2),
                'I' => Pad(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Pad(t.Minute, 2),
                'S' => Pad(t.Second, 2),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'b' or 'h' => t.ToString("MMM", c),
                'B' => t.ToString("MMMM", c),
                'a' => t.ToString("ddd", c),
                'A' => t.ToString("dddd", c),
                'j' => Pad(t.DayOfYear, 3),
                'w' => ((int)t.DayOfWeek).ToString(c),
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + code,
            });
        }

        return sb.ToString();
    }
}
