using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Vip.Forwarding;
using Vip.Protocol;

namespace Vip.Tests.Forwarding;

public class UdpForwardingTests(RelayTransport transport) : TransportFixture(transport)
{
    /// <summary>A UDP server that answers each datagram through <c>reply</c> and remembers who sent it.</summary>
    private sealed class UdpServer : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

        public UdpServer(Func<byte[], byte[]> reply)
        {
            _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
            _ = LoopAsync(reply);
        }

        public IPEndPoint EndPoint { get; }

        public ConcurrentQueue<IPEndPoint> Senders { get; } = new();

        private async Task LoopAsync(Func<byte[], byte[]> reply)
        {
            var buffer = new byte[65536];
            try
            {
                while (true)
                {
                    var r = await _socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
                    Senders.Enqueue((IPEndPoint)r.RemoteEndPoint);
                    await _socket.SendToAsync(reply(buffer[..r.ReceivedBytes]), r.RemoteEndPoint);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        }

        public void Dispose() => _socket.Dispose();
    }

    private ForwarderOptions UdpOptions(params UdpServer[] backends)
    {
        var o = Net.Options();
        o.Transport = Transport;
        o.UdpListen = "127.0.0.1:0";
        o.Udp.SessionIdleTimeout = TimeSpan.FromMilliseconds(300);
        foreach (var b in backends)
        {
            o.Backends.Add(new BackendOptions { Address = b.EndPoint.ToString() });
        }

        return o;
    }

    private static async Task<(string Text, IPEndPoint From)> AskAsync(Socket client, IPEndPoint vip, string text)
    {
        await client.SendToAsync(Encoding.ASCII.GetBytes(text), vip);
        var buffer = new byte[65536];
        using var cts = new CancellationTokenSource(Net.Patience);
        var r = await client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), cts.Token);
        return (Encoding.ASCII.GetString(buffer, 0, r.ReceivedBytes), (IPEndPoint)r.RemoteEndPoint);
    }

    private static Socket NewClient()
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return s;
    }

    [Test]
    public async Task Udp_echo_goes_through_reuses_its_session_and_expires_when_idle()
    {
        using var echo = new UdpServer(d => d);
        await using var vip = await Net.StartAsync(UdpOptions(echo));
        var vipEndPoint = vip.UdpEndPoint!;
        using var client = NewClient();

        var (text, from) = await AskAsync(client, vipEndPoint, "one");
        Assert.That(text, Is.EqualTo("one"));
        Assert.That(from, Is.EqualTo(vipEndPoint), "the reply comes from the VIP address");
        Assert.That((await AskAsync(client, vipEndPoint, "two")).Text, Is.EqualTo("two"));
        Assert.That(vip.ActiveUdpSessions, Is.EqualTo(1));
        var senders = echo.Senders.ToArray();
        Assert.That(senders, Has.Length.EqualTo(2));
        Assert.That(senders[1], Is.EqualTo(senders[0]), "the same session (upstream socket) carried both");

        Assert.That(await Net.EventuallyAsync(() => vip.ActiveUdpSessions == 0), Is.True, "session expired");
        Assert.That((await AskAsync(client, vipEndPoint, "three")).Text, Is.EqualTo("three"));
        Assert.That(echo.Senders.Last(), Is.Not.EqualTo(senders[0]), "a new session after expiry");
    }

    [Test]
    public async Task A_backend_answering_port_unreachable_closes_its_session_and_a_live_one_takes_the_next()
    {
        // A closed UDP port answers with ICMP port unreachable: the session learns it on its socket, closes, and the
        // client's next datagram opens a new session on the next backend. Were the refused session kept, every
        // datagram of this client would keep going to the dead backend and none would be answered.
        using var dead = NewClient();
        var deadEndPoint = (IPEndPoint)dead.LocalEndPoint!;
        dead.Dispose();
        var seen = new ConcurrentQueue<string>();
        using var echo = new UdpServer(d =>
        {
            seen.Enqueue(Encoding.ASCII.GetString(d));
            return d;
        });
        var options = Net.Options();
        options.Transport = Transport;
        options.UdpListen = "127.0.0.1:0";
        options.Udp.SessionIdleTimeout = TimeSpan.FromSeconds(30);
        options.Backends.Add(new BackendOptions { Address = deadEndPoint.ToString() });
        options.Backends.Add(new BackendOptions { Address = echo.EndPoint.ToString() });
        await using var vip = await Net.StartAsync(options);
        using var client = NewClient();

        await client.SendToAsync("to the dead one"u8.ToArray(), vip.UdpEndPoint!);
        string? answer = null;
        var buffer = new byte[2048];
        for (var i = 0; i < 40 && answer is null; i++)
        {
            await client.SendToAsync("hello"u8.ToArray(), vip.UdpEndPoint!);
            using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(250));
            try
            {
                var r = await client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), wait.Token);
                answer = Encoding.ASCII.GetString(buffer, 0, r.ReceivedBytes);
            }
            catch (OperationCanceledException)
            {
                // still the refused session (or its datagram was lost with it): ask again
            }
        }

        Assert.That(answer, Is.EqualTo("hello"), "a new session reached the live backend");
        Assert.That(seen, Has.No.Member("to the dead one"), "the first datagram went to the dead backend");
    }

    [Test]
    public async Task Udp_sessions_rotate_over_the_backends()
    {
        using var a = new UdpServer(_ => "a"u8.ToArray());
        using var b = new UdpServer(_ => "b"u8.ToArray());
        await using var vip = await Net.StartAsync(UdpOptions(a, b));
        using var c1 = NewClient();
        using var c2 = NewClient();
        using var c3 = NewClient();

        var answers = new[]
        {
            (await AskAsync(c1, vip.UdpEndPoint!, "x")).Text,
            (await AskAsync(c2, vip.UdpEndPoint!, "x")).Text,
            (await AskAsync(c3, vip.UdpEndPoint!, "x")).Text,
            (await AskAsync(c1, vip.UdpEndPoint!, "x")).Text,
        };
        Assert.That(answers, Is.EqualTo(new[] { "a", "b", "a", "a" }));
        Assert.That(vip.ActiveUdpSessions, Is.EqualTo(3));
    }

    [Test]
    public async Task The_session_cap_drops_datagrams_from_new_clients()
    {
        using var echo = new UdpServer(d => d);
        var options = UdpOptions(echo);
        options.Udp.MaxSessions = 1;
        options.Udp.SessionIdleTimeout = TimeSpan.FromMinutes(1);
        await using var vip = await Net.StartAsync(options);
        using var first = NewClient();
        using var second = NewClient();

        Assert.That((await AskAsync(first, vip.UdpEndPoint!, "in")).Text, Is.EqualTo("in"));
        await second.SendToAsync("dropped"u8.ToArray(), vip.UdpEndPoint!);
        var buffer = new byte[100];
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        Assert.ThrowsAsync<OperationCanceledException>(async () => await second.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), cts.Token));
        Assert.That(echo.Senders, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Each_datagram_carries_a_PROXY_header_naming_the_client()
    {
        // The backend answers with the source it read from the header, and the payload after it.
        using var backend = new UdpServer(d =>
        {
            var header = ProxyProtocolReader.Default.ParseDatagram(d, out var n);
            return Encoding.ASCII.GetBytes($"{header.GetSourceEndPoint()} {header.Transport} {Encoding.ASCII.GetString(d, n, d.Length - n)}");
        });
        var options = UdpOptions(backend);
        options.ProxyProtocol = true;
        await using var vip = await Net.StartAsync(options);
        using var client = NewClient();

        var expected = $"{client.LocalEndPoint} Datagram ";
        Assert.That((await AskAsync(client, vip.UdpEndPoint!, "first")).Text, Is.EqualTo(expected + "first"));
        Assert.That((await AskAsync(client, vip.UdpEndPoint!, "second")).Text, Is.EqualTo(expected + "second"));
    }

    [Test]
    public async Task A_stream_of_datagrams_is_relayed_both_ways()
    {
        using var echo = new UdpServer(d => d);
        await using var vip = await Net.StartAsync(UdpOptions(echo));
        using var client = NewClient();
        var buffer = new byte[2000];
        for (var i = 0; i < 200; i++)
        {
            var payload = new byte[1 + (i * 37 % 1400)];
            payload.AsSpan().Fill((byte)i);
            await client.SendToAsync(payload, vip.UdpEndPoint!);
            using var cts = new CancellationTokenSource(Net.Patience);
            var r = await client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), cts.Token);
            Assert.That(buffer.AsSpan(0, r.ReceivedBytes).SequenceEqual(payload), Is.True, $"datagram {i}");
        }
    }

    [Test]
    public async Task A_burst_the_kernel_delivered_reaches_the_backend_whole()
    {
        // A backend that only counts, on its own thread, with a large buffer: any loss is the forwarder's.
        using var backend = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        backend.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var backendBuffer = UdpForwarder.SetReceiveBuffer(backend, 4 * 1024 * 1024);
        var received = 0;
        var counter = new Thread(() =>
        {
            var buffer = new byte[2048];
            try
            {
                while (true)
                {
                    backend.Receive(buffer);
                    Interlocked.Increment(ref received);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        }) { IsBackground = true };
        counter.Start();

        var options = Net.Options();
        options.Transport = Transport;
        options.UdpListen = "127.0.0.1:0";
        options.Backends.Add(new BackendOptions { Address = backend.LocalEndPoint!.ToString()! });
        await using var vip = await Net.StartAsync(options);
        using var client = NewClient();

        // More small datagrams than the default 208 KiB buffer holds (a 64-byte datagram takes about 800 bytes of
        // it on loopback), sent faster than one receive loop forwards them; sized to what the kernel granted both
        // buffers here (2 KiB each, to spare), so every one the kernel took must come out.
        var granted = Math.Min(vip.UdpReceiveBufferBytes, backendBuffer);
        var burst = Math.Min(2000, granted / 2048);
        if (burst < 500)
        {
            Assert.Ignore($"the kernel grants only {granted} bytes of UDP receive buffer (net.core.rmem_max): too little for a burst");
        }

        var payload = new byte[64];
        await client.SendToAsync(payload, vip.UdpEndPoint!); // opens the session before the burst
        Assert.That(await Net.EventuallyAsync(() => Volatile.Read(ref received) == 1), Is.True, "the session opened");
        for (var i = 0; i < burst; i++)
        {
            client.SendTo(payload, vip.UdpEndPoint!);
        }

        Assert.That(await Net.EventuallyAsync(() => Volatile.Read(ref received) == burst + 1), Is.True,
            $"{burst + 1} sent, {Volatile.Read(ref received)} reached the backend");
    }

    [Test]
    public void Udp_buffer_sizes_outside_their_range_are_refused()
    {
        var options = Net.Options();
        options.Transport = Transport;
        options.Backends.Add(new BackendOptions { Address = "127.0.0.1:9" });
        options.Udp.ReceiveBufferSize = 100;
        options.Udp.SessionReceiveBufferSize = UdpForwarderOptions.MaxBufferSize + 1;
        var result = new ForwarderOptionsValidator().Validate(null, options);
        Assert.That(result.Failures, Has.Some.Contains("Vip:Udp:ReceiveBufferSize"));
        Assert.That(result.Failures, Has.Some.Contains("Vip:Udp:SessionReceiveBufferSize"));
    }
}
