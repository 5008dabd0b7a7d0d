namespace Vip.Benchmarks.Compare;

/// <summary>
/// Rewrites the generated regions of docs/benchmarks.md, each between <c>&lt;!-- compare:NAME:begin --&gt;</c> and
/// <c>&lt;!-- compare:NAME:end --&gt;</c>. Text outside the markers (the reading, other sections) is never touched.
/// </summary>
internal static class DocsWriter
{
    public static string BeginMarker(string region) => $"<!-- compare:{region}:begin -->";

    public static string EndMarker(string region) => $"<!-- compare:{region}:end -->";

    /// <summary>Replaces each region's content; throws <see cref="InvalidOperationException"/> if a marker pair is missing.</summary>
    public static string Replace(string document, IReadOnlyDictionary<string, string> regions)
    {
        foreach (var (region, content) in regions)
        {
            var begin = BeginMarker(region);
            var end = EndMarker(region);
            var b = document.IndexOf(begin, StringComparison.Ordinal);
            var e = document.IndexOf(end, StringComparison.Ordinal);
            if (b < 0 || e < 0 || e < b)
            {
                throw new InvalidOperationException($"docs/benchmarks.md has no '{begin}' … '{end}' pair; add it where the generated text belongs");
            }

            var newline = document.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
            var body = content.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", newline, StringComparison.Ordinal).TrimEnd();
            document = document[..(b + begin.Length)] + newline + body + newline + document[e..];
        }

        return document;
    }
}
