using System.Net;
using System.Net.Sockets;

namespace Vip.Benchmarks.Compare;

/// <summary>
/// Opens many TCP connections through a forwarder to redis backends, proves each one reaches a backend
/// (PING → +PONG), then leaves them idle. Closing resets them (linger 0) so no TIME_WAIT piles up.
/// </summary>
internal sealed class IdleConnections : IDisposable
{
    private const int Concurrency = 128;
    private static readonly TimeSpan PerConnectionTimeout = TimeSpan.FromSeconds(10);
    private static readonly byte[] Ping = "PING\r\n"u8.ToArray();
    private static readonly byte[] Pong = "+PONG\r\n"u8.ToArray();
    private readonly List<Socket> _sockets;

    private IdleConnections(List<Socket> sockets) => _sockets = sockets;

    public int Count => _sockets.Count;

    /// <summary>Opens <paramref name="count"/> connections; throws if any of them does not answer.</summary>
    public static async Task<IdleConnections> OpenAsync(IPEndPoint target, int count, CancellationToken cancellationToken)
    {
        var sockets = new Socket?[count];
        var failures = 0;
        string? firstFailure = null;
        using var gate = new SemaphoreSlim(Concurrency);
        var tasks = new List<Task>(count);
        for (var i = 0; i < count; i++)
        {
            await gate.WaitAsync(cancellationToken);
            var index = i;
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    sockets[index] = await OpenOneAsync(target, cancellationToken);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException && !cancellationToken.IsCancellationRequested)
                {
                    Interlocked.Increment(ref failures);
                    Interlocked.CompareExchange(ref firstFailure, ex.Message, null);
                }
                finally
                {
                    gate.Release();
                }
            }, cancellationToken));
        }

        await Task.WhenAll(tasks);
        var open = new IdleConnections(sockets.OfType<Socket>().ToList());
        if (failures > 0)
        {
            open.Dispose();
            throw new PeerFailedException($"only {count - failures} of {count} connections reached a backend (first failure: {firstFailure})");
        }

        return open;
    }

    public void Dispose()
    {
        foreach (var socket in _sockets)
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Dispose();
        }

        _sockets.Clear();
    }

    private static async Task<Socket> OpenOneAsync(IPEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(PerConnectionTimeout);
            await socket.ConnectAsync(target, deadline.Token);
            await socket.SendAsync(Ping, SocketFlags.None, deadline.Token);
            var reply = new byte[Pong.Length];
            var got = 0;
            while (got < reply.Length)
            {
                var n = await socket.ReceiveAsync(reply.AsMemory(got), SocketFlags.None, deadline.Token);
                if (n == 0)
                {
                    throw new IOException("closed before +PONG");
                }

                got += n;
            }

            if (!reply.AsSpan().SequenceEqual(Pong))
            {
                throw new IOException("unexpected reply instead of +PONG");
            }

            return socket;
        }
        catch
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Dispose();
            throw;
        }
    }
}
