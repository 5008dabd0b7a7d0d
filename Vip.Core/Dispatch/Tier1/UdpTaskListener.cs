using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// Takes one TASK per UDP datagram (after a PROXY v2 header when the sender is a trusted VIP box) and sends the
/// answer back as one datagram to the sender. Nothing is allocated per datagram.
/// </summary>
internal sealed class UdpTaskListener : IAnswerSink, IDisposable
{
    private readonly Socket _socket;
    private readonly Tier1Dispatcher _dispatcher;
    private readonly Tier1Options _options;
    private readonly TrustedSources _trusted;
    private readonly ILogger _logger;
    private readonly FrameReader _frames;
    private readonly ProxyProtocolReader _proxyReader;
    private readonly FlushBatch _batch = new();
    private readonly object _sendLock = new();
    private readonly byte[] _sendBuffer;

    public UdpTaskListener(IPEndPoint listen, Tier1Dispatcher dispatcher, Tier1Options options, TrustedSources trusted, ILogger logger)
    {
        _socket = new Socket(listen.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(listen);
        _dispatcher = dispatcher;
        _options = options;
        _trusted = trusted;
        _logger = logger;
        _frames = new FrameReader(options.Limits);
        _proxyReader = new ProxyProtocolReader(options.MaxProxyHeaderLength);
        _sendBuffer = new byte[FrameHeader.Size + Math.Min(options.Limits.MaxPayload, 65507)];
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public FrameOutbox? Deliver(ulong clientRequestId, SocketAddress? replyTo, FrameType type, ReadOnlySpan<byte> payload)
    {
        if (replyTo is null || FrameHeader.Size + payload.Length > _sendBuffer.Length)
        {
            return null;
        }

        lock (_sendLock)
        {
            new FrameHeader(type, 0, payload.Length, clientRequestId).WriteTo(_sendBuffer);
            payload.CopyTo(_sendBuffer.AsSpan(FrameHeader.Size));
            try
            {
                _socket.SendTo(_sendBuffer.AsSpan(0, FrameHeader.Size + payload.Length), SocketFlags.None, replyTo);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // UDP: a lost answer is the client's retry to make.
            }
        }

        return null;
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(65536, pinned: true);
        var from = new SocketAddress(_socket.AddressFamily);
        using var registration = stopping.Register(static s => ((Socket)s!).Dispose(), _socket);
        while (!stopping.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize)
            {
                continue;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            try
            {
                OnDatagram(buffer.AsSpan(0, n), from);
            }
            catch (VipProtocolException ex)
            {
                Tier1Metrics.DatagramsDropped.Add(1);
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    Tier1Log.DatagramDropped(_logger, ToEndPoint(from), ex.Message);
                }
            }

            if (_socket.Available == 0)
            {
                _batch.FlushAll();
            }
        }
    }

    private void OnDatagram(ReadOnlySpan<byte> datagram, SocketAddress from)
    {
        var source = ToWire(from);
        var client = source;
        if (_trusted.Contains(source))
        {
            var proxied = _proxyReader.ParseDatagram(datagram, out var length);
            if (!proxied.IsLocal && proxied.Source.Family != 0)
            {
                client = proxied.Source;
            }

            datagram = datagram[length..];
        }

        FrameHeader header;
        ReadOnlySpan<byte> payload;
        try
        {
            header = _frames.ParseDatagram(datagram, out payload);
        }
        catch (VipProtocolException ex) when (ex.Error is ProtocolError.TooLarge or ProtocolError.Malformed && datagram.Length >= FrameHeader.Size)
        {
            Reply(BinaryPrimitives.ReadUInt64BigEndian(datagram[10..]), from, ex.RejectCode, ex.Message);
            return;
        }

        switch (header.Type)
        {
            case FrameType.Task:
                try
                {
                    _dispatcher.Submit(this, header.RequestId, payload, client, from, _batch);
                }
                catch (VipProtocolException ex)
                {
                    Reply(header.RequestId, from, ex.RejectCode, ex.Message);
                }

                break;
            case FrameType.Ping when payload.Length <= ProtocolLimits.MaxPingPayload:
                Deliver(header.RequestId, from, FrameType.Pong, payload);
                break;
            default:
                Reply(header.RequestId, from, RejectCode.Malformed, $"tier-1 does not accept {header.Type} datagrams");
                break;
        }
    }

    private void Reply(ulong requestId, SocketAddress to, RejectCode code, string message)
    {
        Tier1Metrics.Rejects.Add(1);
        Deliver(requestId, to, FrameType.Reject, Tier1Dispatcher.EncodeReject(code, 0, message));
    }

    // sockaddr_in / sockaddr_in6: port at offset 2, IPv4 address at 4, IPv6 address at 8 (same on every platform).
    internal static WireEndpoint ToWire(SocketAddress address)
    {
        var b = address.Buffer.Span;
        var port = BinaryPrimitives.ReadUInt16BigEndian(b[2..]);
        return address.Family == AddressFamily.InterNetworkV6
            ? WireEndpoint.FromBytes(b.Slice(8, 16), port)
            : WireEndpoint.FromBytes(b.Slice(4, 4), port);
    }

    private static EndPoint ToEndPoint(SocketAddress address) => ToWire(address).ToIPEndPoint();

    public void Dispose() => _socket.Dispose();
}
