using System.Globalization;

namespace Vip.Selection;

/// <summary>The one number syntax shared by requirement operands and server attribute values.</summary>
internal static class RequirementNumber
{
    // Optional sign, digits, optional fraction: no exponent, no thousands separators, no NaN/Infinity,
    // so "8" and "8.0" compare equal but a value like "1e9" or "0x10" is simply not a number.
    private const NumberStyles Style = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint;

    public static bool TryParse(ReadOnlySpan<char> text, out double value)
    {
        if (text.IsEmpty || text.Length > 64)
        {
            value = 0;
            return false;
        }

        return double.TryParse(text, Style, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
    }
}
