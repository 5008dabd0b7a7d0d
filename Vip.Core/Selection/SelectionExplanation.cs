using System.Text.Json;

namespace Vip.Selection;

/// <summary>Why a server was dropped from the candidates (or <see cref="Kept"/>).</summary>
public enum DropReason
{
    /// <summary>The server is a candidate.</summary>
    Kept,

    /// <summary>A binding key disagrees between the client (or task) and the server.</summary>
    BindingMismatch,

    /// <summary>The server lists the kinds it runs, and the task's kind is not among them.</summary>
    KindNotServed,

    /// <summary>A filter term of the requirement failed (the detail names it).</summary>
    RequirementFailed,

    /// <summary>Registered or reloaded but not heard from since.</summary>
    NotHeardFrom,

    /// <summary>The server is draining.</summary>
    Draining,

    /// <summary>No heartbeat within <see cref="SelectionOptions.ExpireAfter"/>.</summary>
    Expired,

    /// <summary>Active tasks plus issued tickets reach the capacity.</summary>
    Full,
}

/// <summary>One server in an explanation.</summary>
/// <param name="Server">The server.</param>
/// <param name="Reason">Why it was dropped, or <see cref="DropReason.Kept"/>.</param>
/// <param name="Detail">The failed term, the disagreeing binding, ...; null when kept.</param>
/// <param name="PreferenceScore">Sum of the weights of the preferences it satisfies (requirement and client).</param>
/// <param name="Load">(active + issued) ÷ capacity at the time of the explanation.</param>
/// <param name="Rank">0 for the server this decision would choose, 1.. for the alternatives, -1 otherwise.</param>
public sealed record ServerVerdict(ServerEntry Server, DropReason Reason, string? Detail, int PreferenceScore, double Load, int Rank)
{
    /// <summary>True when the server is a candidate.</summary>
    public bool Kept => Reason == DropReason.Kept;
}

/// <summary>The answer to <c>vipd ctl explain</c>: the decision a task would get, and every server with its verdict.</summary>
public sealed class SelectionExplanation
{
    internal SelectionExplanation(
        SelectionOutcome outcome,
        string? message,
        bool clientKnown,
        IReadOnlyDictionary<string, string> clientAttributes,
        RequirementExpression? requirement,
        IReadOnlyList<ServerVerdict> servers)
    {
        Outcome = outcome;
        Message = message;
        ClientKnown = clientKnown;
        ClientAttributes = clientAttributes;
        Requirement = requirement;
        Servers = servers;
    }

    /// <summary>The outcome the task would get now (a dry run: no ticket is counted).</summary>
    public SelectionOutcome Outcome { get; }

    /// <summary>The reject message, when there is no server.</summary>
    public string? Message { get; }

    /// <summary>True when the client id has a record.</summary>
    public bool ClientKnown { get; }

    /// <summary>The client's effective attributes (record or defaults, merged with network rules).</summary>
    public IReadOnlyDictionary<string, string> ClientAttributes { get; }

    /// <summary>The parsed requirement; null when it is malformed.</summary>
    public RequirementExpression? Requirement { get; }

    /// <summary>Every server of the snapshot, in id order, with its verdict.</summary>
    public IReadOnlyList<ServerVerdict> Servers { get; }

    /// <summary>The server the task would go to, if any.</summary>
    public ServerEntry? Chosen => Servers.FirstOrDefault(v => v.Rank == 0)?.Server;

    /// <summary>Writes the explanation as JSON (for the ADMIN-RESULT payload).</summary>
    /// <param name="writer">The destination.</param>
    public void WriteJson(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteString("outcome", Outcome.ToString());
        if (Message is not null)
        {
            writer.WriteString("message", Message);
        }

        writer.WriteString("chosen", Chosen?.Id);
        writer.WriteBoolean("clientKnown", ClientKnown);
        writer.WriteStartObject("clientAttributes");
        foreach ((string k, string v) in ClientAttributes.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            writer.WriteString(k, v);
        }

        writer.WriteEndObject();
        writer.WriteString("requirement", Requirement?.ToString());
        writer.WriteStartArray("servers");
        foreach (ServerVerdict v in Servers)
        {
            writer.WriteStartObject();
            writer.WriteString("id", v.Server.Id);
            writer.WriteString("service", v.Server.Service.ToString());
            writer.WriteBoolean("kept", v.Kept);
            writer.WriteString("reason", v.Reason.ToString());
            if (v.Detail is not null)
            {
                writer.WriteString("detail", v.Detail);
            }

            writer.WriteNumber("score", v.PreferenceScore);
            writer.WriteNumber("load", Math.Round(v.Load, 4));
            writer.WriteNumber("rank", v.Rank);
            writer.WriteString("state", v.Server.State.ToString());
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
