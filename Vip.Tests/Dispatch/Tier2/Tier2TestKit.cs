using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Vip.Dispatch.Tier2;
using Vip.Protocol;
using Vip.Tests.Agent;
using Vip.Tickets;

namespace Vip.Tests.Dispatch.Tier2;

/// <summary>
/// A peer on a real loopback socket that reads frames synchronously, so a test can ask "is a frame already
/// waiting?" at a precise moment (the EXPECT-before-REDIRECT check).
/// </summary>
internal sealed class RawPeer : IDisposable
{
    private readonly Socket _socket;

    private RawPeer(Socket socket) => _socket = socket;

    public Socket Socket => _socket;

    public static RawPeer Connect(IPEndPoint server, IPAddress? from = null)
    {
        var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (from is not null)
        {
            s.Bind(new IPEndPoint(from, 0));
        }

        s.Connect(server);
        return new RawPeer(s);
    }

    public void Send<T>(ulong id, T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, id, message);
        _socket.Send(w.WrittenSpan);
    }

    public void SendBytes(ReadOnlySpan<byte> bytes) => _socket.Send(bytes);

    /// <summary>True when bytes are already waiting in the socket, without waiting at all.</summary>
    public bool HasDataNow => _socket.Poll(0, SelectMode.SelectRead) && _socket.Available > 0;

    /// <summary>The next frame; null when the peer closed the connection.</summary>
    public ReceivedFrame? Receive(TimeSpan? timeout = null)
    {
        _socket.ReceiveTimeout = (int)(timeout ?? TimeSpan.FromSeconds(10)).TotalMilliseconds;
        var header = new byte[FrameHeader.Size];
        if (!ReadExactly(header))
        {
            return null;
        }

        var h = FrameHeader.Read(header, ProtocolLimits.MaxPayloadCeiling);
        var payload = new byte[h.Length];
        if (!ReadExactly(payload))
        {
            return null;
        }

        return new ReceivedFrame(h.Type, h.RequestId, payload);
    }

    /// <summary>The next frame of <paramref name="type"/>, skipping others.</summary>
    public ReceivedFrame Receive(FrameType type, TimeSpan? timeout = null)
    {
        while (true)
        {
            var f = Receive(timeout) ?? throw new IOException("closed while waiting for " + type);
            if (f.Type == type)
            {
                return f;
            }
        }
    }

    /// <summary>True when the peer closes the connection (after any frames it still sends).</summary>
    public bool Closed(TimeSpan? timeout = null)
    {
        try
        {
            while (Receive(timeout) is not null)
            {
            }

            return true;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private bool ReadExactly(Span<byte> buffer)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            int n;
            try
            {
                n = _socket.Receive(buffer[read..]);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                return false;
            }

            if (n == 0)
            {
                return false;
            }

            read += n;
        }

        return true;
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>Builds tier-2 daemons on loopback with a temporary store and in-memory keys.</summary>
internal sealed class Tier2Fixture : IAsyncDisposable
{
    private readonly List<Tier2Server> _servers = [];

    public Tier2Fixture()
    {
        Directory = Path.Combine(Path.GetTempPath(), "vip-tier2-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(Directory);
        Keys = TicketKeyRing.CreateNew();
    }

    public string Directory { get; }

    public TicketKeyRing Keys { get; }

    public const string Token = "s3cret-token";

    public Tier2Options Options(string db = "tier2.db", Action<Tier2Options>? configure = null)
    {
        var o = new Tier2Options { Id = "t2-" + db, DatabasePath = Path.Combine(Directory, db), AdminToken = Token };
        o.Selection.HeartbeatInterval = TimeSpan.FromSeconds(1);
        o.Selection.MissedHeartbeats = 3;
        o.Selection.PublishDelay = TimeSpan.Zero;
        o.RegistrationGrace = TimeSpan.Zero; // the tests register servers themselves; the warm-up has its own tests
        configure?.Invoke(o);
        return o;
    }

    public async Task<Tier2Server> StartAsync(Tier2Options? options = null, Random? random = null)
    {
        var server = new Tier2Server(options ?? Options(), Keys, null, null, random);
        await server.StartAsync();
        _servers.Add(server);
        return server;
    }

    public async Task StopAsync(Tier2Server server)
    {
        await server.DisposeAsync();
        _servers.Remove(server);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _servers)
        {
            await s.DisposeAsync();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>An app server's control link played by the test over a raw socket.</summary>
internal static class RawAppServer
{
    public static RawPeer Register(Tier2Server tier2, string id, IPEndPoint service, uint capacity = 100_000, params (string Key, string Value)[] attrs)
    {
        var peer = RawPeer.Connect(tier2.ControlEndPoint);
        peer.Send(1, new Register(id, WireEndpoint.From(service), capacity, attrs.Select(a => KeyValuePair.Create(a.Key, a.Value)).ToArray()));
        var ok = peer.Receive(FrameType.RegisterOk);
        Assert.That(ok.RequestId, Is.EqualTo(1UL));
        return peer;
    }

    public static void Heartbeat(this RawPeer peer, string id, ushort load = 0, uint active = 0, Vip.Protocol.ServerState state = Vip.Protocol.ServerState.Up)
        => peer.Send(0, new Heartbeat(id, load, active, state));
}

internal static class Forwarding
{
    public static ForwardRequest Task(string client, string requirement = "", string kind = "sha256", IPAddress? from = null, params (string Key, string Value)[] attrs)
        => new("t1", WireEndpoint.From(from ?? IPAddress.Loopback, 40000),
            new TaskRequest(client, kind, attrs.Select(a => KeyValuePair.Create(a.Key, a.Value)).ToArray(), requirement, "abc"u8.ToArray()));

    /// <summary>The ticket id inside a version-1 ticket (docs/protocol.md, "Tickets").</summary>
    public static ulong TicketId(ReadOnlyMemory<byte> ticket) => BinaryPrimitives.ReadUInt64BigEndian(ticket.Span[5..]);
}
