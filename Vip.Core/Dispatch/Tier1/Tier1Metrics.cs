using System.Diagnostics.Metrics;

namespace Vip.Dispatch.Tier1;

/// <summary>Instruments of the tier-1 daemon (Meter <c>Vip.Dispatch</c>, names <c>vip.tier1.*</c>).</summary>
internal static class Tier1Metrics
{
    public static readonly Meter Meter = new("Vip.Dispatch", "1.0");

    public static readonly Counter<long> TasksReceived = Meter.CreateCounter<long>("vip.tier1.tasks", "{task}", "Tasks received from clients (TCP and UDP).");
    public static readonly Counter<long> Redirects = Meter.CreateCounter<long>("vip.tier1.redirects", "{task}", "REDIRECT answers relayed to clients.");
    public static readonly Counter<long> Rejects = Meter.CreateCounter<long>("vip.tier1.rejects", "{task}", "REJECT answers sent to clients (relayed or tier-1's own).");
    public static readonly Counter<long> Failovers = Meter.CreateCounter<long>("vip.tier1.failovers", "{task}", "Tasks re-sent to another tier-2 daemon.");
    public static readonly Counter<long> Timeouts = Meter.CreateCounter<long>("vip.tier1.timeouts", "{task}", "FORWARDs that tier-2 did not answer in time.");
    public static readonly UpDownCounter<long> Connections = Meter.CreateUpDownCounter<long>("vip.tier1.connections", "{connection}", "Client connections open.");
    public static readonly Counter<long> Limits = Meter.CreateCounter<long>("vip.tier1.limits", "{hit}", "Limits hit by clients, tagged limit = too_large, frame_timeout, idle_timeout, proxy_header_timeout, max_connections, max_connections_per_source, max_in_flight.");
    public static readonly Counter<long> DatagramsDropped = Meter.CreateCounter<long>("vip.tier1.datagrams.dropped", "{datagram}", "UDP datagrams dropped (bad PROXY header or frame).");
}
