using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Client;

/// <summary>A path to the VIP address that carries many requests at once, each answered by request id.</summary>
internal interface IVipChannel : IAsyncDisposable
{
    /// <summary>False once the channel broke; the client then opens a fresh one.</summary>
    bool IsUsable { get; }

    /// <summary>Sends a TASK and waits for its answer; throws IOException/SocketException/TimeoutException when the hop fails.</summary>
    Task<AnswerFrame> SendAsync(TaskRequest task, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>One TCP connection to the VIP address with many TASKs in flight.</summary>
internal sealed class TcpVipChannel : IVipChannel
{
    private readonly RequestConnection _connection;
    private readonly SemaphoreSlim _slots;
    private readonly TimeProvider _time;
    private volatile bool _broken;

    private TcpVipChannel(Socket socket, ProtocolLimits limits, int maxInFlight, TimeProvider time)
    {
        _connection = new RequestConnection(socket, limits, FrameType.Redirect, "the VIP connection");
        _slots = new SemaphoreSlim(maxInFlight, maxInFlight);
        _time = time;
    }

    public static async Task<TcpVipChannel> OpenAsync(VipClientOptions options, CancellationToken cancellationToken)
    {
        var socket = await ClientSockets.ConnectAsync(options.Vip!, options.LocalAddress, options.ConnectTimeout, options.TimeProvider, cancellationToken).ConfigureAwait(false);
        return new TcpVipChannel(socket, options.Limits, options.MaxInFlight, options.TimeProvider);
    }

    public bool IsUsable => !_broken && _connection.IsOpen;

    public IPEndPoint LocalEndPoint => _connection.LocalEndPoint;

    public async Task<AnswerFrame> SendAsync(TaskRequest task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await _connection.RequestAsync(task, timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // No answer in time: the path is suspect; the caller retries over a fresh connection.
            _broken = true;
            throw;
        }
        finally
        {
            _slots.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _broken = true;
        await _connection.DisposeAsync().ConfigureAwait(false);
        _slots.Dispose();
    }
}

/// <summary>A UDP socket towards the VIP address: one datagram per TASK, answers matched by request id.</summary>
internal sealed class UdpVipChannel : IVipChannel
{
    private readonly Socket _socket;
    private readonly PendingRequests<AnswerFrame> _pending = new();
    private readonly FrameReader _reader;
    private readonly TimeProvider _time;
    private readonly Task _receive;
    private volatile bool _broken;

    private UdpVipChannel(Socket socket, ProtocolLimits limits, TimeProvider time)
    {
        _socket = socket;
        _reader = new FrameReader(limits);
        _time = time;
        _receive = Task.Run(ReceiveAsync);
    }

    public static UdpVipChannel Open(VipClientOptions options)
    {
        var vip = options.Vip!;
        var socket = new Socket(vip.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(options.LocalAddress ?? (vip.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any), 0));
            socket.Connect(vip); // only the VIP address's answers are accepted
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new UdpVipChannel(socket, options.Limits, options.TimeProvider);
    }

    public bool IsUsable => !_broken;

    private async Task ReceiveAsync()
    {
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                int n;
                try
                {
                    n = await _socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
                {
                    continue; // ICMP port unreachable from an earlier datagram: the retry deals with it
                }

                try
                {
                    var header = _reader.ParseDatagram(buffer.AsSpan(0, n), out var payload);
                    if (header.Type is FrameType.Redirect or FrameType.Reject)
                    {
                        _pending.TryComplete(header.RequestId, new AnswerFrame(header.Type, payload.ToArray()));
                    }
                }
                catch (VipProtocolException)
                {
                    // Not an answer of ours: ignore the datagram.
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            _broken = true;
            _pending.FailAll(new IOException("the UDP socket was closed", ex));
        }
    }

    public async Task<AnswerFrame> SendAsync(TaskRequest task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var (id, answer) = _pending.Register();
        try
        {
            var frame = ClientSockets.EncodeFrame(id, task);
            if (frame.Length > 65507)
            {
                throw new ArgumentException($"the task needs {frame.Length} bytes; a UDP task must fit in one datagram (65,507 bytes)", nameof(task));
            }

            await _socket.SendAsync(frame, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            return await answer.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _pending.Forget(id);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _broken = true;
        _socket.Dispose();
        await _receive.ConfigureAwait(false);
    }
}
