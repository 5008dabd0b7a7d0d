using System.Diagnostics.Metrics;

namespace Vip.Selection;

/// <summary>Metrics of the selection engine (meter <c>Vip.Selection</c>).</summary>
internal static class SelectionMetrics
{
    public static readonly Meter Meter = new("Vip.Selection");

    /// <summary>Decisions by outcome.</summary>
    public static readonly Counter<long> Decisions = Meter.CreateCounter<long>("vip.selection.decisions", "{decision}", "Selection decisions, by outcome");

    /// <summary>Requirements parsed (requirement cache misses).</summary>
    public static readonly Counter<long> Parses = Meter.CreateCounter<long>("vip.selection.requirement_parses", "{parse}", "Requirement expressions parsed (cache misses)");

    /// <summary>Snapshots published.</summary>
    public static readonly Counter<long> Publishes = Meter.CreateCounter<long>("vip.selection.publishes", "{snapshot}", "Server and client snapshots published");

    // Boxed once: passing a tag must not allocate on the hot path.
    private static readonly object[] OutcomeNames = [.. Enum.GetNames<SelectionOutcome>()];

    public static KeyValuePair<string, object?> OutcomeTag(SelectionOutcome outcome) => new("outcome", OutcomeNames[(int)outcome]);
}
