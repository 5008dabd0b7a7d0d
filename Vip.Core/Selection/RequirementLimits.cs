namespace Vip.Selection;

/// <summary>Caps applied while parsing a requirement expression. Requirements come from the network.</summary>
public sealed class RequirementLimits
{
    /// <summary>The defaults: 1 024 characters, 32 terms, 16 list items, weights up to 1 000.</summary>
    public static RequirementLimits Default { get; } = new();

    /// <summary>Hard ceiling for <see cref="MaxLength"/> (the wire field is a <c>str16</c> capped at 4 096 bytes).</summary>
    public const int MaxLengthCeiling = 4096;

    /// <summary>Longest accepted requirement, in characters. Default 1 024; 1 to <see cref="MaxLengthCeiling"/>.</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>Most terms (filters plus preferences) in one requirement. Default 32; 1 to 256.</summary>
    public int MaxTerms { get; init; } = 32;

    /// <summary>Most values in one <c>in (...)</c> / <c>notin (...)</c> list. Default 16; 1 to 256.</summary>
    public int MaxListItems { get; init; } = 16;

    /// <summary>Largest preference weight (<c>key=value:weight</c>). Default 1 000; 1 to 10 000.</summary>
    public int MaxWeight { get; init; } = 1000;

    /// <summary>Returns the first problem with these limits, or null when they are valid.</summary>
    /// <returns>An error message, or null.</returns>
    public string? Validate()
    {
        if (MaxLength is < 1 or > MaxLengthCeiling)
        {
            return $"MaxLength must be 1 to {MaxLengthCeiling} (was {MaxLength}).";
        }

        if (MaxTerms is < 1 or > 256)
        {
            return $"MaxTerms must be 1 to 256 (was {MaxTerms}).";
        }

        if (MaxListItems is < 1 or > 256)
        {
            return $"MaxListItems must be 1 to 256 (was {MaxListItems}).";
        }

        return MaxWeight is < 1 or > 10_000 ? $"MaxWeight must be 1 to 10000 (was {MaxWeight})." : null;
    }
}
