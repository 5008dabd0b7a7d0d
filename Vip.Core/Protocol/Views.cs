using System.Text;

namespace Vip.Protocol;

/// <summary>A TASK payload viewed in place: every field is a slice of the payload; nothing is allocated.</summary>
public readonly ref struct TaskView
{
    /// <summary>Client id, UTF-8.</summary>
    public ReadOnlySpan<byte> ClientId { get; init; }

    /// <summary>Task kind, UTF-8.</summary>
    public ReadOnlySpan<byte> Kind { get; init; }

    /// <summary>Task attributes.</summary>
    public AttributeList Attributes { get; init; }

    /// <summary>Requirement expression, UTF-8 (may be empty).</summary>
    public ReadOnlySpan<byte> Requirement { get; init; }

    /// <summary>Body bytes (may be empty).</summary>
    public ReadOnlySpan<byte> Body { get; init; }

    // TASK := clientId:str8 kind:str8 attrs:attrs requirement:str16 body:bytes32
    /// <summary>Reads and validates a TASK payload.</summary>
    public static TaskView Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var view = Read(ref r);
        r.EnsureEnd();
        return view;
    }

    internal static TaskView Read(scoped ref PayloadReader r) => new()
    {
        ClientId = r.ReadNonEmptyStr8("client id"),
        Kind = r.ReadNonEmptyStr8("kind"),
        Attributes = r.ReadAttributes(),
        Requirement = r.ReadStr16(),
        Body = r.ReadBytes32(),
    };

    /// <summary>Materialises the task as a <see cref="TaskRequest"/>.</summary>
    public TaskRequest ToRequest() => new(
        Encoding.UTF8.GetString(ClientId), Encoding.UTF8.GetString(Kind), Attributes.ToArray(),
        Encoding.UTF8.GetString(Requirement), Body.ToArray());
}

/// <summary>A FORWARD payload viewed in place.</summary>
public readonly ref struct ForwardView
{
    /// <summary>The forwarding tier-1 daemon's id, UTF-8.</summary>
    public ReadOnlySpan<byte> Tier1Id { get; init; }

    /// <summary>The client's real address.</summary>
    public WireEndpoint Client { get; init; }

    /// <summary>The task.</summary>
    public TaskView Task { get; init; }

    // FORWARD := tier1Id:str8 client:endpoint TASK-payload
    /// <summary>Reads and validates a FORWARD payload.</summary>
    public static ForwardView Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var tier1 = r.ReadNonEmptyStr8("tier-1 id");
        var client = r.ReadEndpoint();
        var task = TaskView.Read(ref r);
        r.EnsureEnd();
        return new ForwardView { Tier1Id = tier1, Client = client, Task = task };
    }
}
