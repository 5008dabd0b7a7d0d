using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Vip.Forwarding;

namespace Vip.Tests.Forwarding;

public class TcpForwardingTests(RelayTransport transport) : TransportFixture(transport)
{
    private static async Task<string?> NameThroughAsync(VipForwarder vip)
    {
        using var s = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        return await Net.ReadLineAsync(s);
    }

    [Test]
    public async Task Connections_go_to_three_backends_in_round_robin_order()
    {
        await using var a = TestServer.Named("a");
        await using var b = TestServer.Named("b");
        await using var c = TestServer.Named("c");
        await using var vip = await Net.StartAsync(Options(a, b, c));

        var names = new List<string?>();
        for (var i = 0; i < 7; i++)
        {
            names.Add(await NameThroughAsync(vip));
        }

        Assert.That(names, Is.EqualTo(new[] { "a", "b", "c", "a", "b", "c", "a" }));
    }

    [Test]
    public async Task Weights_set_the_share_of_each_backend()
    {
        await using var a = TestServer.Named("a");
        await using var b = TestServer.Named("b");
        var options = Options(a, b);
        options.Backends[0].Weight = 3;
        await using var vip = await Net.StartAsync(options);

        var names = new List<string?>();
        for (var i = 0; i < 8; i++)
        {
            names.Add(await NameThroughAsync(vip));
        }

        // Smooth weighted round robin spreads the heavier backend out: a a b a, a a b a.
        Assert.That(names, Is.EqualTo(new[] { "a", "a", "b", "a", "a", "a", "b", "a" }));
    }

    [Test]
    public async Task A_dead_backend_is_skipped_and_rejoins_after_recovery()
    {
        await using var a = TestServer.Named("a");
        await using var b = TestServer.Named("b");
        await using var c = TestServer.Named("c");
        var options = Options(a, b, c);
        options.HealthCheck.Mode = HealthCheckMode.Tcp;
        options.HealthCheck.Fall = 2;
        options.HealthCheck.Rise = 2;
        await using var vip = await Net.StartAsync(options);

        await b.StopAsync();
        Assert.That(await Net.EventuallyAsync(() => !vip.GetBackends()[1].IsUp), Is.True, "b marked down");
        var names = new List<string?>();
        for (var i = 0; i < 4; i++)
        {
            names.Add(await NameThroughAsync(vip));
        }

        Assert.That(names, Has.No.Member("b"));
        Assert.That(names.Distinct().Order(), Is.EqualTo(new[] { "a", "c" }));
        Assert.That(names[0], Is.Not.EqualTo(names[1]), "the two healthy backends still alternate");

        b.Start(); // same port
        Assert.That(await Net.EventuallyAsync(() => vip.GetBackends()[1].IsUp), Is.True, "b back up");
        names.Clear();
        for (var i = 0; i < 3; i++)
        {
            names.Add(await NameThroughAsync(vip));
        }

        Assert.That(names.Order(), Is.EqualTo(new[] { "a", "b", "c" }));
    }

    [Test]
    public async Task A_failed_connect_falls_through_to_the_next_backend()
    {
        await using var a = TestServer.Named("a");
        var options = Options();
        options.HealthCheck.Mode = HealthCheckMode.None; // only the fall-through can save the client here
        options.Backends.Add(new BackendOptions { Address = Net.DeadEndPoint().ToString() });
        options.Backends.Add(new BackendOptions { Address = a.Address });
        await using var vip = await Net.StartAsync(options);

        for (var i = 0; i < 4; i++)
        {
            Assert.That(await NameThroughAsync(vip), Is.EqualTo("a"));
        }
    }

    [Test]
    public async Task A_dead_backend_is_marked_down_by_failed_client_connects()
    {
        await using var a = TestServer.Named("a");
        var options = Options();
        options.HealthCheck.Mode = HealthCheckMode.Tcp;
        options.HealthCheck.Interval = TimeSpan.FromHours(1); // no active check after the first
        options.HealthCheck.Fall = 2;
        var dead = Net.DeadEndPoint();
        options.Backends.Add(new BackendOptions { Address = a.Address });
        options.Backends.Add(new BackendOptions { Address = dead.ToString() });
        await using var vip = await Net.StartAsync(options);

        // Every other client connect hits the dead backend, fails, and falls through to a.
        for (var i = 0; i < 4; i++)
        {
            Assert.That(await NameThroughAsync(vip), Is.EqualTo("a"));
        }

        Assert.That(vip.GetBackends()[1].IsUp, Is.False, "marked down by the failed connects");
        Assert.That(vip.GetBackends()[0].IsUp, Is.True);
    }

    [Test]
    public async Task The_client_is_closed_when_no_backend_answers()
    {
        var options = Options();
        options.HealthCheck.Mode = HealthCheckMode.None;
        options.Backends.Add(new BackendOptions { Address = Net.DeadEndPoint().ToString() });
        options.Backends.Add(new BackendOptions { Address = Net.DeadEndPoint().ToString() });
        await using var vip = await Net.StartAsync(options);

        Assert.That(await Net.IsRefusedAsync(vip.TcpEndPoints[0]), Is.True);
    }

    [Test]
    public async Task A_half_close_from_the_client_leaves_the_answer_direction_open()
    {
        // The backend reads to EOF, then answers with what it counted, then closes.
        await using var backend = new TestServer(async s =>
        {
            var data = await Net.ReadToEndAsync(s);
            await s.SendAsync(Encoding.ASCII.GetBytes($"got {data.Length} bytes: {Encoding.ASCII.GetString(data)}"));
            s.Shutdown(SocketShutdown.Send);
        });
        await using var vip = await Net.StartAsync(Options(backend));

        using var client = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        await client.SendAsync("hello"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        var answer = await Net.ReadToEndAsync(client);
        Assert.That(Encoding.ASCII.GetString(answer), Is.EqualTo("got 5 bytes: hello"));
    }

    [Test]
    public async Task A_half_close_from_the_backend_leaves_the_request_direction_open()
    {
        var received = new TaskCompletionSource<string>();
        await using var backend = new TestServer(async s =>
        {
            await s.SendAsync("banner"u8.ToArray());
            s.Shutdown(SocketShutdown.Send);
            received.SetResult(Encoding.ASCII.GetString(await Net.ReadToEndAsync(s)));
        });
        await using var vip = await Net.StartAsync(Options(backend));

        using var client = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        Assert.That(Encoding.ASCII.GetString(await Net.ReadToEndAsync(client)), Is.EqualTo("banner"));
        await client.SendAsync("still talking"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        Assert.That(await received.Task.WaitAsync(Net.Patience), Is.EqualTo("still talking"));
    }

    [Test]
    public async Task A_reset_by_the_backend_reaches_the_client_as_a_reset()
    {
        await using var backend = new TestServer(async s =>
        {
            var one = new byte[1];
            await s.ReceiveAsync(one);
            s.LingerState = new LingerOption(true, 0);
            s.Close();
        });
        await using var vip = await Net.StartAsync(Options(backend));

        using var client = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        await client.SendAsync("x"u8.ToArray());
        var ex = Assert.ThrowsAsync<SocketException>(async () => await Net.ReadToEndAsync(client));
        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionReset));
    }

    [Test]
    public async Task A_reset_by_the_client_reaches_the_backend_as_a_reset()
    {
        var outcome = new TaskCompletionSource<SocketError>();
        await using var backend = new TestServer(async s =>
        {
            try
            {
                await Net.ReadToEndAsync(s);
                outcome.TrySetResult(SocketError.Success);
            }
            catch (SocketException ex)
            {
                outcome.TrySetResult(ex.SocketErrorCode);
            }
        });
        await using var vip = await Net.StartAsync(Options(backend));

        var client = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        await client.SendAsync("x"u8.ToArray());
        await Task.Delay(100);
        client.LingerState = new LingerOption(true, 0);
        client.Close();
        Assert.That(await outcome.Task.WaitAsync(Net.Patience), Is.EqualTo(SocketError.ConnectionReset));
    }

    [Test]
    public async Task A_large_transfer_arrives_intact_both_ways()
    {
        const long Size = 256L * 1024 * 1024;
        // The backend hashes what it receives and sends its own stream back at the same time.
        var backendReceived = new TaskCompletionSource<byte[]>();
        await using var backend = new TestServer(async s =>
        {
            var send = SendPatternAsync(s, Size, seed: 2);
            backendReceived.SetResult(await HashToEndAsync(s));
            await send;
            s.Shutdown(SocketShutdown.Send);
        });
        await using var vip = await Net.StartAsync(Options(backend));

        using var client = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        var clientSent = SendPatternAsync(client, Size, seed: 1);
        var clientReceived = HashToEndAsync(client);
        var sentHash = await clientSent;
        client.Shutdown(SocketShutdown.Send);

        Assert.That(await backendReceived.Task.WaitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(sentHash), "client to backend");
        Assert.That(await clientReceived.WaitAsync(TimeSpan.FromSeconds(60)), Is.EqualTo(ExpectedPatternHash(Size, seed: 2)), "backend to client");
        Assert.That(vip.BytesToBackends, Is.EqualTo(Size));
        Assert.That(vip.BytesToClients, Is.EqualTo(Size));
    }

    [Test]
    public async Task Hundreds_of_concurrent_connections_are_relayed()
    {
        await using var backend = TestServer.Echo();
        await using var vip = await Net.StartAsync(Options(backend));

        var tasks = Enumerable.Range(0, 400).Select(async i =>
        {
            using var s = await Net.ConnectAsync(vip.TcpEndPoints[0]);
            var message = Encoding.ASCII.GetBytes($"connection {i} says hello\n");
            await s.SendAsync(message);
            var echo = new byte[message.Length];
            await Net.ReadExactlyAsync(s, echo);
            s.Shutdown(SocketShutdown.Send);
            var rest = await Net.ReadToEndAsync(s);
            return echo.SequenceEqual(message) && rest.Length == 0;
        }).ToArray();

        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(results, Has.All.True);
        Assert.That(await Net.EventuallyAsync(() => vip.ActiveConnections == 0), Is.True);
    }

    [Test]
    public async Task Thousands_of_short_connections_in_a_row_are_each_relayed()
    {
        // Connection churn: a stream of short-lived connections, a few at a time, each one round trip. Caught a lost
        // wake-up of an epoll loop (a connection handed to a sleeping loop that never looked at it).
        await using var backend = TestServer.Echo();
        await using var vip = await Net.StartAsync(Options(backend));
        const int Workers = 8;
        const int PerWorker = 250;

        var workers = Enumerable.Range(0, Workers).Select(async w =>
        {
            for (var i = 0; i < PerWorker; i++)
            {
                using var s = await Net.ConnectAsync(vip.TcpEndPoints[0]);
                var message = Encoding.ASCII.GetBytes($"worker {w} connection {i}\n");
                await s.SendAsync(message);
                var echo = new byte[message.Length];
                await Net.ReadExactlyAsync(s, echo).WaitAsync(Net.Patience);
                if (!echo.SequenceEqual(message))
                {
                    return $"worker {w} connection {i}: wrong echo";
                }
            }

            return null;
        }).ToArray();

        var failures = (await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60))).Where(f => f is not null);
        Assert.That(failures, Is.Empty);
        Assert.That(await Net.EventuallyAsync(() => vip.ActiveConnections == 0), Is.True);
    }

    [Test]
    public async Task A_slow_reader_holds_back_the_writer()
    {
        var written = 0L;
        var stalled = new TaskCompletionSource();
        await using var backend = new TestServer(async s =>
        {
            var chunk = new byte[64 * 1024];
            while (true)
            {
                // A send that cannot complete within a second means the pressure reached the backend.
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                try
                {
                    await s.SendAsync(chunk, SocketFlags.None, cts.Token);
                }
                catch (OperationCanceledException)
                {
                    stalled.TrySetResult();
                    return;
                }

                Interlocked.Add(ref written, chunk.Length);
                if (Interlocked.Read(ref written) > 1L << 30)
                {
                    return; // no backpressure at all: the assertion below fails
                }
            }
        });
        var options = Options(backend);
        await using var vip = await Net.StartAsync(options);

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 64 * 1024 };
        await client.ConnectAsync(vip.TcpEndPoints[0]);
        await Task.WhenAny(stalled.Task, Task.Delay(TimeSpan.FromSeconds(20)));
        Assert.That(stalled.Task.IsCompleted, Is.True, "the backend's sends stalled");
        // Kernel buffers on both legs plus the forwarder's own bound (MaxBufferedBytes + one read).
        var forwarderHeld = vip.BytesToClients;
        Assert.That(Interlocked.Read(ref written), Is.LessThan(64L * 1024 * 1024));
        Assert.That(forwarderHeld, Is.LessThanOrEqualTo(Interlocked.Read(ref written)));
    }

    [Test]
    public async Task The_total_connection_limit_closes_extra_connections_at_once()
    {
        await using var backend = TestServer.Echo();
        var options = Options(backend);
        options.MaxConnections = 3;
        await using var vip = await Net.StartAsync(options);

        var held = new List<Socket>();
        for (var i = 0; i < 3; i++)
        {
            var s = await Net.ConnectAsync(vip.TcpEndPoints[0]);
            await s.SendAsync("x"u8.ToArray());
            await Net.ReadExactlyAsync(s, new byte[1]);
            held.Add(s);
        }

        Assert.That(await Net.IsRefusedAsync(vip.TcpEndPoints[0]), Is.True);

        held[0].Dispose();
        Assert.That(await Net.EventuallyAsync(() => vip.ActiveConnections == 2), Is.True);
        using var again = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        await again.SendAsync("y"u8.ToArray());
        var one = new byte[1];
        await Net.ReadExactlyAsync(again, one);
        Assert.That(one[0], Is.EqualTo((byte)'y'));
        foreach (var s in held)
        {
            s.Dispose();
        }
    }

    [Test]
    public async Task The_per_source_limit_counts_each_client_address_apart()
    {
        await using var backend = TestServer.Echo();
        var options = Options(backend);
        options.MaxConnectionsPerSource = 2;
        await using var vip = await Net.StartAsync(options);

        var held = new List<Socket>();
        for (var i = 0; i < 2; i++)
        {
            var s = await Net.ConnectAsync(vip.TcpEndPoints[0]);
            await s.SendAsync("x"u8.ToArray());
            await Net.ReadExactlyAsync(s, new byte[1]);
            held.Add(s);
        }

        Assert.That(await Net.IsRefusedAsync(vip.TcpEndPoints[0]), Is.True, "third from 127.0.0.1");

        using var other = await Net.ConnectAsync(vip.TcpEndPoints[0], from: IPAddress.Parse("127.0.0.2"));
        await other.SendAsync("z"u8.ToArray());
        var one = new byte[1];
        await Net.ReadExactlyAsync(other, one);
        Assert.That(one[0], Is.EqualTo((byte)'z'), "first from 127.0.0.2");
        foreach (var s in held)
        {
            s.Dispose();
        }
    }

    [Test]
    public async Task Drain_refuses_new_connections_and_lets_live_ones_finish()
    {
        await using var backend = TestServer.Echo();
        var options = Options(backend);
        options.DrainTimeout = TimeSpan.FromSeconds(20);
        var vip = await Net.StartAsync(options);
        var endPoint = vip.TcpEndPoints[0];

        using var live = await Net.ConnectAsync(endPoint);
        await live.SendAsync("before"u8.ToArray());
        await Net.ReadExactlyAsync(live, new byte[6]);

        var stop = vip.StopAsync();
        Assert.That(await Net.EventuallyAsync(() => !CanConnect(endPoint)), Is.True, "listener closed");
        Assert.That(stop.IsCompleted, Is.False, "still draining");

        await live.SendAsync("during"u8.ToArray());
        var echo = new byte[6];
        await Net.ReadExactlyAsync(live, echo);
        Assert.That(echo, Is.EqualTo("during"u8.ToArray()));

        live.Shutdown(SocketShutdown.Send);
        Assert.That(await Net.ReadToEndAsync(live), Is.Empty);
        await stop.WaitAsync(Net.Patience);
        await vip.DisposeAsync();
    }

    [Test]
    public async Task Drain_cuts_the_connections_left_at_the_deadline()
    {
        await using var backend = TestServer.Echo();
        var options = Options(backend);
        options.DrainTimeout = TimeSpan.FromMilliseconds(300);
        var vip = await Net.StartAsync(options);

        using var live = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        await live.SendAsync("x"u8.ToArray());
        await Net.ReadExactlyAsync(live, new byte[1]);
        await vip.StopAsync().WaitAsync(Net.Patience);
        Assert.That(await Net.IsClosedByPeerAsync(live), Is.True);
        Assert.That(vip.ActiveConnections, Is.Zero);
        await vip.DisposeAsync();
    }

    [Test]
    public async Task Idle_connections_are_closed_after_the_idle_timeout()
    {
        await using var backend = TestServer.Echo();
        var options = Options(backend);
        options.IdleTimeout = TimeSpan.FromMilliseconds(300);
        await using var vip = await Net.StartAsync(options);

        using var s = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        await s.SendAsync("x"u8.ToArray());
        await Net.ReadExactlyAsync(s, new byte[1]);
        Assert.That(await Net.IsClosedByPeerAsync(s), Is.True);
        Assert.That(await Net.EventuallyAsync(() => vip.ActiveConnections == 0), Is.True);
    }

    [Test]
    public async Task A_reload_moves_new_connections_and_keeps_live_ones()
    {
        await using var a = TestServer.Named("a");
        await using var b = TestServer.Named("b");
        var monitor = new TestOptionsMonitor<ForwarderOptions>(Options(a));
        await using var vip = new VipForwarder(monitor);
        await vip.StartAsync();

        using var live = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        Assert.That(await Net.ReadLineAsync(live), Is.EqualTo("a"));

        monitor.Set(Options(b));
        Assert.That(vip.GetBackends().Select(x => x.Address), Is.EqualTo(new[] { b.Address }));
        Assert.That(await NameThroughAsync(vip), Is.EqualTo("b"));

        // The connection to a is still there: no EOF and no reset reach the client.
        await live.SendAsync("x"u8.ToArray());
        Assert.That(live.Poll(200_000, SelectMode.SelectRead), Is.False, "no EOF or reset on the old connection");
    }

    [Test]
    public async Task An_invalid_reload_keeps_the_current_backends()
    {
        await using var a = TestServer.Named("a");
        var monitor = new TestOptionsMonitor<ForwarderOptions>(Options(a));
        await using var vip = new VipForwarder(monitor);
        await vip.StartAsync();

        var bad = Options();
        bad.Backends.Add(new BackendOptions { Address = "not an address" });
        monitor.Set(bad);
        Assert.That(await NameThroughAsync(vip), Is.EqualTo("a"));
    }

    [Test]
    public async Task Ping_checks_keep_a_tier1_backend_up_and_take_a_silent_one_down()
    {
        await using var tier1 = new TestServer(async s =>
        {
            var header = new byte[Vip.Protocol.FrameHeader.Size];
            await Net.ReadExactlyAsync(s, header);
            var ping = Vip.Protocol.FrameHeader.Read(header, 64);
            new Vip.Protocol.FrameHeader(Vip.Protocol.FrameType.Pong, 0, 0, ping.RequestId).WriteTo(header);
            await s.SendAsync(header);
            await TestServer.DrainAsync(s);
        });
        await using var silent = new TestServer(TestServer.DrainAsync);
        var options = Options(tier1, silent);
        options.HealthCheck.Mode = HealthCheckMode.Ping;
        options.HealthCheck.Fall = 1;
        options.HealthCheck.Timeout = TimeSpan.FromMilliseconds(200);
        await using var vip = await Net.StartAsync(options);

        Assert.That(await Net.EventuallyAsync(() => !vip.GetBackends()[1].IsUp), Is.True, "silent backend down");
        await Task.Delay(500);
        Assert.That(vip.GetBackends()[0].IsUp, Is.True, "tier-1 backend up");
    }

    [Test]
    public async Task Starting_on_a_taken_port_throws_address_in_use()
    {
        await using var a = TestServer.Named("a");
        var options = Options(a);
        options.Listen = a.Address;
        await using var vip = new VipForwarder(options);
        var ex = Assert.ThrowsAsync<SocketException>(() => vip.StartAsync());
        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
    }

    [Test]
    public void Bad_options_are_refused_with_every_reason()
    {
        var options = new ForwarderOptions { Listen = "nowhere", MaxConnections = 0, RelayThreads = 17, Transport = (RelayTransport)9 };
        options.Backends.Add(new BackendOptions { Address = "127.0.0.1:0", Weight = 0 });
        var result = new ForwarderOptionsValidator().Validate(null, options);
        Assert.That(result.Failed, Is.True);
        Assert.That(result.Failures, Has.Some.Contains("Vip:Listen"));
        Assert.That(result.Failures, Has.Some.Contains("Vip:MaxConnections"));
        Assert.That(result.Failures, Has.Some.Contains("Vip:Backends:0 '127.0.0.1:0'"));
        Assert.That(result.Failures, Has.Some.Contains("Weight"));
        Assert.That(result.Failures, Has.Some.Contains("Vip:RelayThreads"));
        Assert.That(result.Failures, Has.Some.Contains("Vip:Transport '9'"));
    }

    private static bool CanConnect(IPEndPoint endPoint)
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            s.Connect(endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    // The streams repeat a random block whose length (1 MiB + 7) is prime to every chunk size, so a chunk lost,
    // doubled or moved changes the hash; no per-byte work is needed to produce them.
    private static byte[] Pattern(int seed)
    {
        var block = new byte[(1 << 20) + 7];
        new Random(seed).NextBytes(block);
        return block;
    }

    private static async Task<byte[]> SendPatternAsync(Socket s, long size, int seed)
    {
        var block = Pattern(seed);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long sent = 0;
        while (sent < size)
        {
            var offset = (int)(sent % block.Length);
            var n = (int)Math.Min(Math.Min(256 * 1024, block.Length - offset), size - sent);
            var chunk = block.AsMemory(offset, n);
            sha.AppendData(chunk.Span);
            await s.SendAsync(chunk);
            sent += n;
        }

        return sha.GetHashAndReset();
    }

    private static byte[] ExpectedPatternHash(long size, int seed)
    {
        var block = Pattern(seed);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long done = 0;
        while (done < size)
        {
            var offset = (int)(done % block.Length);
            var n = (int)Math.Min(block.Length - offset, size - done);
            sha.AppendData(block, offset, n);
            done += n;
        }

        return sha.GetHashAndReset();
    }

    private static async Task<byte[]> HashToEndAsync(Socket s)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        while (true)
        {
            var n = await s.ReceiveAsync(buffer);
            if (n == 0)
            {
                return sha.GetHashAndReset();
            }

            sha.AppendData(buffer, 0, n);
        }
    }
}
