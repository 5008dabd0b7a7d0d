using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Options;
using Vip.Forwarding;

namespace Vip.Tests.Forwarding;

/// <summary>A TCP server on loopback that runs a handler per connection; it can stop and start again on the same port.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly Func<Socket, Task> _handler;
    private readonly List<Socket> _accepted = [];
    private Socket? _listener;
    private Task _loop = Task.CompletedTask;

    public TestServer(Func<Socket, Task> handler, IPAddress? address = null, int port = 0)
    {
        _handler = handler;
        EndPoint = new IPEndPoint(address ?? IPAddress.Loopback, port);
        Start();
    }

    public IPEndPoint EndPoint { get; private set; }

    public string Address => EndPoint.ToString();

    public int Accepted;

    /// <summary>Answers each connection with its name and a newline, then keeps it open until the client closes.</summary>
    public static TestServer Named(string name) => new(async s =>
    {
        await s.SendAsync(Encoding.ASCII.GetBytes(name + "\n"));
        await DrainAsync(s);
    });

    /// <summary>Echoes every byte; passes a FIN on as a half-close after echoing everything.</summary>
    public static TestServer Echo() => new(async s =>
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var n = await s.ReceiveAsync(buffer);
            if (n == 0)
            {
                s.Shutdown(SocketShutdown.Send);
                return;
            }

            await s.SendAsync(buffer.AsMemory(0, n));
        }
    });

    public void Start()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(EndPoint);
        listener.Listen(512);
        EndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _listener = listener;
        _loop = AcceptLoopAsync(listener);
    }

    /// <summary>Stops listening and resets every connection it accepted (the backend "dies").</summary>
    public async Task StopAsync()
    {
        _listener?.Dispose();
        await _loop;
        lock (_accepted)
        {
            foreach (var s in _accepted)
            {
                try
                {
                    s.LingerState = new LingerOption(true, 0);
                }
                catch (SocketException)
                {
                }
                catch (ObjectDisposedException)
                {
                }

                s.Dispose();
            }

            _accepted.Clear();
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (true)
        {
            Socket s;
            try
            {
                s = await listener.AcceptAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref Accepted);
            lock (_accepted)
            {
                _accepted.Add(s);
            }

            _ = RunAsync(s);
        }
    }

    private async Task RunAsync(Socket s)
    {
        try
        {
            await _handler(s);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
        }
        finally
        {
            lock (_accepted)
            {
                _accepted.Remove(s);
            }

            s.Dispose();
        }
    }

    public static async Task DrainAsync(Socket s)
    {
        var buffer = new byte[4096];
        while (await s.ReceiveAsync(buffer) > 0)
        {
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}

/// <summary>An options monitor whose value a test can replace, firing the change callbacks as a reload would.</summary>
internal sealed class TestOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    private readonly List<Action<T, string?>> _listeners = [];

    public T CurrentValue { get; private set; } = value;

    public T Get(string? name) => CurrentValue;

    public IDisposable? OnChange(Action<T, string?> listener)
    {
        lock (_listeners)
        {
            _listeners.Add(listener);
        }

        return new Unsubscribe(() =>
        {
            lock (_listeners)
            {
                _listeners.Remove(listener);
            }
        });
    }

    public void Set(T next)
    {
        CurrentValue = next;
        Action<T, string?>[] all;
        lock (_listeners)
        {
            all = [.. _listeners];
        }

        foreach (var l in all)
        {
            l(next, Options.DefaultName);
        }
    }

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}

/// <summary>
/// A fixture whose every case runs on both relay transports: the epoll loops (the Linux default) and .NET's socket
/// engine. The epoll run is ignored, loudly, where that transport cannot run.
/// </summary>
[TestFixture(RelayTransport.Epoll)]
[TestFixture(RelayTransport.Sockets)]
public abstract class TransportFixture(RelayTransport transport)
{
    /// <summary>The transport this run of the fixture uses.</summary>
    protected RelayTransport Transport { get; } = transport;

    [OneTimeSetUp]
    public void RequireTransport()
    {
        if (Transport == RelayTransport.Epoll && !Vip.Forwarding.Epoll.LinuxSockets.IsSupported)
        {
            Assert.Ignore("the epoll transport runs on Linux x64/arm64 only; this machine is not one");
        }
    }

    /// <summary><see cref="Net.Options"/> on this run's transport.</summary>
    private protected ForwarderOptions Options(params TestServer[] backends)
    {
        var options = Net.Options(backends);
        options.Transport = Transport;
        return options;
    }
}

internal static class Net
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    public static ForwarderOptions Options(params TestServer[] backends)
    {
        var o = new ForwarderOptions { Listen = "127.0.0.1:0", IdleTimeout = TimeSpan.FromMinutes(1), DrainTimeout = TimeSpan.FromSeconds(5) };
        // Checks off unless a test turns them on: a check is a connection too, and would reach one-shot test backends.
        o.HealthCheck.Mode = HealthCheckMode.None;
        o.HealthCheck.Interval = TimeSpan.FromMilliseconds(100);
        o.HealthCheck.Timeout = TimeSpan.FromMilliseconds(500);
        foreach (var b in backends)
        {
            o.Backends.Add(new BackendOptions { Address = b.Address });
        }

        return o;
    }

    public static async Task<VipForwarder> StartAsync(ForwarderOptions options)
    {
        var f = new VipForwarder(options);
        await f.StartAsync();
        return f;
    }

    public static async Task<Socket> ConnectAsync(IPEndPoint endPoint, IPAddress? from = null)
    {
        var s = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (from is not null)
        {
            s.Bind(new IPEndPoint(from, 0));
        }

        using var cts = new CancellationTokenSource(Patience);
        await s.ConnectAsync(endPoint, cts.Token);
        return s;
    }

    /// <summary>Reads one line (up to '\n'), or null when the connection closes first.</summary>
    public static async Task<string?> ReadLineAsync(Socket s)
    {
        using var cts = new CancellationTokenSource(Patience);
        var sb = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            int n;
            try
            {
                n = await s.ReceiveAsync(one, SocketFlags.None, cts.Token);
            }
            catch (SocketException)
            {
                return null;
            }

            if (n == 0)
            {
                return null;
            }

            if (one[0] == '\n')
            {
                return sb.ToString();
            }

            sb.Append((char)one[0]);
        }
    }

    /// <summary>Reads until the peer closes; returns the bytes, or throws SocketException on a reset.</summary>
    public static async Task<byte[]> ReadToEndAsync(Socket s)
    {
        using var cts = new CancellationTokenSource(Patience);
        var ms = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var n = await s.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            if (n == 0)
            {
                return ms.ToArray();
            }

            ms.Write(buffer, 0, n);
        }
    }

    public static async Task ReadExactlyAsync(Socket s, Memory<byte> buffer)
    {
        using var cts = new CancellationTokenSource(Patience);
        var got = 0;
        while (got < buffer.Length)
        {
            var n = await s.ReceiveAsync(buffer[got..], SocketFlags.None, cts.Token);
            if (n == 0)
            {
                throw new EndOfStreamException($"closed after {got} of {buffer.Length} bytes");
            }

            got += n;
        }
    }

    /// <summary>True when the forwarder refused a new connection: reset during connect, or closed before any byte.</summary>
    public static async Task<bool> IsRefusedAsync(IPEndPoint endPoint)
    {
        Socket s;
        try
        {
            s = await ConnectAsync(endPoint);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionRefused)
        {
            return true;
        }

        using (s)
        {
            return await IsClosedByPeerAsync(s);
        }
    }

    /// <summary>True when the forwarder closed the connection (EOF or reset) within the patience.</summary>
    public static async Task<bool> IsClosedByPeerAsync(Socket s)
    {
        using var cts = new CancellationTokenSource(Patience);
        try
        {
            var buffer = new byte[256];
            while (true)
            {
                if (await s.ReceiveAsync(buffer, SocketFlags.None, cts.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or the patience runs out.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(20);
        }

        return condition();
    }

    /// <summary>A loopback port with nothing listening on it.</summary>
    public static IPEndPoint DeadEndPoint()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)s.LocalEndPoint!;
    }
}
