using System.Net.Sockets;
using System.Text;

namespace Vip.Tests.Hosting;

/// <summary>A datagram socket standing in for systemd's NOTIFY_SOCKET; collects what the service sends.</summary>
internal sealed class NotifySocket : IDisposable
{
    private readonly Socket _socket;
    private readonly string _directory;
    private readonly byte[] _buffer = new byte[4096];

    public NotifySocket()
    {
        _directory = Directory.CreateTempSubdirectory("vip-notify-").FullName;
        Path = System.IO.Path.Combine(_directory, "notify.sock");
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(Path));
    }

    public string Path { get; }

    /// <summary>Every assignment received, in order ("READY=1", "WATCHDOG=1", "STATUS=...").</summary>
    public List<string> Received { get; } = [];

    /// <summary>Receives until an assignment equal to <paramref name="expected"/> arrives; fails after <paramref name="timeout"/>.</summary>
    public async Task WaitForAsync(string expected, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            int n;
            try
            {
                n = await _socket.ReceiveAsync(_buffer, SocketFlags.None, cts.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"no {expected} within {timeout}; received: [{string.Join(", ", Received)}]");
                return;
            }

            // One datagram may carry several newline-separated assignments (sd_notify(3)).
            var lines = Encoding.UTF8.GetString(_buffer, 0, n).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Received.AddRange(lines);
            if (lines.Contains(expected))
            {
                return;
            }
        }
    }

    /// <summary>Takes whatever is already queued, without waiting.</summary>
    public void Drain()
    {
        while (_socket.Available > 0)
        {
            var n = _socket.Receive(_buffer);
            Received.AddRange(Encoding.UTF8.GetString(_buffer, 0, n).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
