using System.Text;

namespace Vip.Protocol;

// Record forms of every frame payload, holding strings: used by the client library, the control plane and tests.
// Hot paths use the span views (TaskView, ForwardView) and the FrameWriter helpers instead.

/// <summary>TASK: a computing task submitted by a client.</summary>
/// <param name="ClientId">The client's id (non-empty).</param>
/// <param name="Kind">What to compute (sample app: sha256, primes, sleep, echo).</param>
/// <param name="Attributes">Task attributes, matched against the servers' attributes.</param>
/// <param name="Requirement">A requirement expression (docs/selection.md); empty for none.</param>
/// <param name="Body">Optional input bytes.</param>
public sealed record TaskRequest(string ClientId, string Kind, IReadOnlyList<KeyValuePair<string, string>> Attributes, string Requirement, ReadOnlyMemory<byte> Body)
    : IFrameMessage<TaskRequest>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Task;

    /// <inheritdoc/>
    public int PayloadSize => WireSize.Str8(ClientId) + WireSize.Str8(Kind) + WireSize.Attributes(Attributes) + WireSize.Str16(Requirement) + 4 + Body.Length;

    // TASK := clientId:str8 kind:str8 attrs:attrs requirement:str16 body:bytes32
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteStr8(ClientId);
        writer.WriteStr8(Kind);
        writer.WriteAttributes(Attributes);
        writer.WriteStr16(Requirement);
        writer.WriteBytes32(Body.Span);
    }

    /// <inheritdoc/>
    public static TaskRequest Read(ReadOnlySpan<byte> payload) => TaskView.Read(payload).ToRequest();
}

/// <summary>FORWARD: a task relayed by a tier-1 daemon, with the client's real address.</summary>
public sealed record ForwardRequest(string Tier1Id, WireEndpoint Client, TaskRequest Task) : IFrameMessage<ForwardRequest>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Forward;

    /// <inheritdoc/>
    public int PayloadSize => WireSize.Str8(Tier1Id) + Client.WireSize + Task.PayloadSize;

    // FORWARD := tier1Id:str8 client:endpoint TASK-payload
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteStr8(Tier1Id);
        writer.WriteEndpoint(Client);
        Task.WritePayload(ref writer);
    }

    /// <inheritdoc/>
    public static ForwardRequest Read(ReadOnlySpan<byte> payload)
    {
        var v = ForwardView.Read(payload);
        return new ForwardRequest(Encoding.UTF8.GetString(v.Tier1Id), v.Client, v.Task.ToRequest());
    }
}

/// <summary>One ranked alternative in a REDIRECT (no ticket: the client resubmits to use it).</summary>
public sealed record RedirectAlternative(string ServerId, WireEndpoint Server);

/// <summary>REDIRECT: the chosen app server and the ticket to present to it.</summary>
public sealed record Redirect(string ServerId, WireEndpoint Server, long ExpiresUnixMs, ReadOnlyMemory<byte> Ticket, IReadOnlyList<RedirectAlternative> Alternatives)
    : IFrameMessage<Redirect>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Redirect;

    /// <inheritdoc/>
    public int PayloadSize
    {
        get
        {
            var n = WireSize.Str8(ServerId) + Server.WireSize + 8 + 2 + Ticket.Length + 1;
            for (var i = 0; i < Alternatives.Count; i++)
            {
                n += WireSize.Str8(Alternatives[i].ServerId) + Alternatives[i].Server.WireSize;
            }

            return n;
        }
    }

    // REDIRECT := serverId:str8 server:endpoint expiresUnixMs:i64 ticket:bytes16 altCount:u8 (altServerId:str8 alt:endpoint){altCount}
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        if (Alternatives.Count > ProtocolLimits.MaxAlternatives)
        {
            throw new ArgumentException($"more than {ProtocolLimits.MaxAlternatives} alternatives");
        }

        writer.WriteStr8(ServerId);
        writer.WriteEndpoint(Server);
        writer.WriteI64(ExpiresUnixMs);
        writer.WriteBytes16(Ticket.Span);
        writer.WriteU8((byte)Alternatives.Count);
        for (var i = 0; i < Alternatives.Count; i++)
        {
            writer.WriteStr8(Alternatives[i].ServerId);
            writer.WriteEndpoint(Alternatives[i].Server);
        }
    }

    /// <inheritdoc/>
    public static Redirect Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var serverId = Encoding.UTF8.GetString(r.ReadNonEmptyStr8("server id"));
        var server = r.ReadEndpoint();
        var expires = r.ReadI64();
        var ticket = r.ReadBytes16().ToArray();
        var count = r.ReadU8();
        if (count > ProtocolLimits.MaxAlternatives)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"{count} alternatives exceed the cap of {ProtocolLimits.MaxAlternatives}");
        }

        var alts = count == 0 ? [] : new RedirectAlternative[count];
        for (var i = 0; i < count; i++)
        {
            alts[i] = new RedirectAlternative(Encoding.UTF8.GetString(r.ReadNonEmptyStr8("alternative server id")), r.ReadEndpoint());
        }

        r.EnsureEnd();
        return new Redirect(serverId, server, expires, ticket, alts);
    }
}

/// <summary>REJECT: why a request was refused and when to retry.</summary>
public sealed record Reject(RejectCode Code, uint RetryAfterMs, string Message) : IFrameMessage<Reject>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Reject;

    /// <inheritdoc/>
    public int PayloadSize => 2 + 4 + WireSize.Str16(Message);

    // REJECT := code:u16 retryAfterMs:u32 message:str16
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteU16((ushort)Code);
        writer.WriteU32(RetryAfterMs);
        writer.WriteStr16(Message);
    }

    /// <inheritdoc/>
    public static Reject Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var code = r.ReadU16();
        if (code is 0 or > (ushort)RejectCode.Internal)
        {
            VipProtocolException.ThrowMalformed($"unknown reject code {code}");
        }

        var retry = r.ReadU32();
        var message = Encoding.UTF8.GetString(r.ReadStr16());
        r.EnsureEnd();
        return new Reject((RejectCode)code, retry, message);
    }
}

/// <summary>RESULT: what a task produced on the app server (sample app protocol after CLAIM-OK).</summary>
public sealed record TaskResult(ushort Status, ReadOnlyMemory<byte> Output) : IFrameMessage<TaskResult>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Result;

    /// <inheritdoc/>
    public int PayloadSize => 2 + 4 + Output.Length;

    // RESULT := status:u16 output:bytes32
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteU16(Status);
        writer.WriteBytes32(Output.Span);
    }

    /// <inheritdoc/>
    public static TaskResult Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var status = r.ReadU16();
        var output = r.ReadBytes32().ToArray();
        r.EnsureEnd();
        return new TaskResult(status, output);
    }
}

/// <summary>REGISTER: an app server announces its service address, capacity and attributes.</summary>
public sealed record Register(string ServerId, WireEndpoint Service, uint Capacity, IReadOnlyList<KeyValuePair<string, string>> Attributes)
    : IFrameMessage<Register>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Register;

    /// <inheritdoc/>
    public int PayloadSize => WireSize.Str8(ServerId) + Service.WireSize + 4 + WireSize.Attributes(Attributes);

    // REGISTER := serverId:str8 service:endpoint capacity:u32 attrs:attrs
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteStr8(ServerId);
        writer.WriteEndpoint(Service);
        writer.WriteU32(Capacity);
        writer.WriteAttributes(Attributes);
    }

    /// <inheritdoc/>
    public static Register Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var id = Encoding.UTF8.GetString(r.ReadNonEmptyStr8("server id"));
        var service = r.ReadEndpoint();
        var capacity = r.ReadU32();
        var attrs = r.ReadAttributes().ToArray();
        r.EnsureEnd();
        return new Register(id, service, capacity, attrs);
    }
}

/// <summary>REGISTER-OK: the tier-2 daemon's heartbeat contract.</summary>
public sealed record RegisterOk(uint HeartbeatIntervalMs, uint ExpireAfterMs) : IFrameMessage<RegisterOk>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.RegisterOk;

    /// <inheritdoc/>
    public int PayloadSize => 8;

    // REGISTER-OK := heartbeatIntervalMs:u32 expireAfterMs:u32
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteU32(HeartbeatIntervalMs);
        writer.WriteU32(ExpireAfterMs);
    }

    /// <inheritdoc/>
    public static RegisterOk Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var result = new RegisterOk(r.ReadU32(), r.ReadU32());
        r.EnsureEnd();
        return result;
    }
}

/// <summary>Whether an app server takes new tasks.</summary>
public enum ServerState : byte
{
    /// <summary>Takes new tasks.</summary>
    Up = 0,
    /// <summary>Finishes its tasks but takes no new ones.</summary>
    Draining = 1,
}

/// <summary>HEARTBEAT: an app server's load and state.</summary>
public sealed record Heartbeat(string ServerId, ushort LoadPermille, uint ActiveTasks, ServerState State) : IFrameMessage<Heartbeat>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Heartbeat;

    /// <inheritdoc/>
    public int PayloadSize => WireSize.Str8(ServerId) + 2 + 4 + 1;

    // HEARTBEAT := serverId:str8 loadPermille:u16 activeTasks:u32 state:u8
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteStr8(ServerId);
        writer.WriteU16(LoadPermille);
        writer.WriteU32(ActiveTasks);
        writer.WriteU8((byte)State);
    }

    /// <inheritdoc/>
    public static Heartbeat Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var id = Encoding.UTF8.GetString(r.ReadNonEmptyStr8("server id"));
        var load = r.ReadU16();
        var active = r.ReadU32();
        var state = r.ReadU8();
        if (state > 1)
        {
            VipProtocolException.ThrowMalformed($"unknown server state {state}");
        }

        r.EnsureEnd();
        return new Heartbeat(id, load, active, (ServerState)state);
    }
}

/// <summary>DEREGISTER: an app server leaves.</summary>
public sealed record Deregister(string ServerId) : IFrameMessage<Deregister>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Deregister;

    /// <inheritdoc/>
    public int PayloadSize => WireSize.Str8(ServerId);

    // DEREGISTER := serverId:str8
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer) => writer.WriteStr8(ServerId);

    /// <inheritdoc/>
    public static Deregister Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var id = Encoding.UTF8.GetString(r.ReadNonEmptyStr8("server id"));
        r.EnsureEnd();
        return new Deregister(id);
    }
}

/// <summary>EXPECT: a tier-2 daemon tells an app server which client will arrive with which ticket.</summary>
public sealed record Expect(ulong TicketId, WireEndpoint Client, long ExpiresUnixMs, string Kind, IReadOnlyList<KeyValuePair<string, string>> Attributes)
    : IFrameMessage<Expect>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Expect;

    /// <inheritdoc/>
    public int PayloadSize => 8 + Client.WireSize + 8 + WireSize.Str8(Kind) + WireSize.Attributes(Attributes);

    // EXPECT := ticketId:u64 client:endpoint expiresUnixMs:i64 kind:str8 attrs:attrs
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteU64(TicketId);
        writer.WriteEndpoint(Client);
        writer.WriteI64(ExpiresUnixMs);
        writer.WriteStr8(Kind);
        writer.WriteAttributes(Attributes);
    }

    /// <inheritdoc/>
    public static Expect Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var ticketId = r.ReadU64();
        var client = r.ReadEndpoint();
        var expires = r.ReadI64();
        var kind = Encoding.UTF8.GetString(r.ReadStr8());
        var attrs = r.ReadAttributes().ToArray();
        r.EnsureEnd();
        return new Expect(ticketId, client, expires, kind, attrs);
    }
}

/// <summary>CLAIM: a client presents its ticket to the app server.</summary>
public sealed record Claim(ReadOnlyMemory<byte> Ticket) : IFrameMessage<Claim>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Claim;

    /// <inheritdoc/>
    public int PayloadSize => 2 + Ticket.Length;

    // CLAIM := ticket:bytes16
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer) => writer.WriteBytes16(Ticket.Span);

    /// <inheritdoc/>
    public static Claim Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var ticket = r.ReadBytes16().ToArray();
        r.EnsureEnd();
        return new Claim(ticket);
    }
}

/// <summary>CLAIM-OK: the app server accepted the ticket; the connection now belongs to the application.</summary>
public sealed record ClaimOk(string ServerId) : IFrameMessage<ClaimOk>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.ClaimOk;

    /// <inheritdoc/>
    public int PayloadSize => WireSize.Str8(ServerId);

    // CLAIM-OK := serverId:str8
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer) => writer.WriteStr8(ServerId);

    /// <inheritdoc/>
    public static ClaimOk Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var id = Encoding.UTF8.GetString(r.ReadStr8());
        r.EnsureEnd();
        return new ClaimOk(id);
    }
}

/// <summary>CLAIM-DENIED: the app server refused the ticket and closes the connection.</summary>
public sealed record ClaimDenied(ClaimDenyReason Reason, string Message) : IFrameMessage<ClaimDenied>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.ClaimDenied;

    /// <inheritdoc/>
    public int PayloadSize => 2 + WireSize.Str16(Message);

    // CLAIM-DENIED := reason:u16 message:str16
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteU16((ushort)Reason);
        writer.WriteStr16(Message);
    }

    /// <inheritdoc/>
    public static ClaimDenied Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var reason = r.ReadU16();
        if (reason is 0 or > (ushort)ClaimDenyReason.NotExpected)
        {
            VipProtocolException.ThrowMalformed($"unknown claim-denied reason {reason}");
        }

        var message = Encoding.UTF8.GetString(r.ReadStr16());
        r.EnsureEnd();
        return new ClaimDenied((ClaimDenyReason)reason, message);
    }
}

/// <summary>PING or PONG: an optional opaque payload of up to 64 bytes, echoed.</summary>
public sealed record Ping(ReadOnlyMemory<byte> Data) : IFrameMessage<Ping>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Ping;

    /// <inheritdoc/>
    public int PayloadSize => Data.Length;

    // PING := opaque bytes, up to 64
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer) => writer.WriteRaw(Data.Span);

    /// <inheritdoc/>
    public static Ping Read(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > ProtocolLimits.MaxPingPayload)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"ping payload of {payload.Length} bytes exceeds {ProtocolLimits.MaxPingPayload}");
        }

        return new Ping(payload.ToArray());
    }
}

/// <summary>ADMIN: a control-plane command with its token and arguments.</summary>
public sealed record AdminRequest(string Token, string Command, IReadOnlyList<string> Args) : IFrameMessage<AdminRequest>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.Admin;

    /// <inheritdoc/>
    public int PayloadSize
    {
        get
        {
            var n = WireSize.Str8(Token) + WireSize.Str8(Command) + 1;
            foreach (var a in Args)
            {
                n += WireSize.Str16(a);
            }

            return n;
        }
    }

    // ADMIN := token:str8 command:str8 argCount:u8 (arg:str16){argCount}
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        if (Args.Count > ProtocolLimits.MaxAdminArgs)
        {
            throw new ArgumentException($"more than {ProtocolLimits.MaxAdminArgs} arguments");
        }

        writer.WriteStr8(Token);
        writer.WriteStr8(Command);
        writer.WriteU8((byte)Args.Count);
        foreach (var a in Args)
        {
            writer.WriteStr16(a);
        }
    }

    /// <inheritdoc/>
    public static AdminRequest Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var token = Encoding.UTF8.GetString(r.ReadStr8());
        var command = Encoding.UTF8.GetString(r.ReadNonEmptyStr8("command"));
        var count = r.ReadU8();
        if (count > ProtocolLimits.MaxAdminArgs)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"{count} arguments exceed the cap of {ProtocolLimits.MaxAdminArgs}");
        }

        var args = new string[count];
        for (var i = 0; i < count; i++)
        {
            args[i] = Encoding.UTF8.GetString(r.ReadStr16());
        }

        r.EnsureEnd();
        return new AdminRequest(token, command, args);
    }
}

/// <summary>ADMIN-RESULT: status (0 = ok) and a JSON document.</summary>
public sealed record AdminResult(ushort Status, string Json) : IFrameMessage<AdminResult>
{
    /// <inheritdoc/>
    public static FrameType FrameType => FrameType.AdminResult;

    /// <inheritdoc/>
    public int PayloadSize => 2 + 4 + Encoding.UTF8.GetByteCount(Json);

    // ADMIN-RESULT := status:u16 json:bytes32
    /// <inheritdoc/>
    public void WritePayload(ref PayloadWriter writer)
    {
        writer.WriteU16(Status);
        writer.WriteU32((uint)Encoding.UTF8.GetByteCount(Json));
        writer.WriteRaw(Encoding.UTF8.GetBytes(Json));
    }

    /// <inheritdoc/>
    public static AdminResult Read(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var status = r.ReadU16();
        var json = r.ReadBytes32();
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            VipProtocolException.Throw(ProtocolError.InvalidUtf8, "admin result is not valid UTF-8");
        }

        r.EnsureEnd();
        return new AdminResult(status, Encoding.UTF8.GetString(json));
    }
}
