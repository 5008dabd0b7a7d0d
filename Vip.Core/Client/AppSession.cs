using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Client;

/// <summary>
/// A connection to an app server whose ticket was accepted (CLAIM-OK). It speaks the sample app's protocol:
/// TASK frames in, RESULT frames out, several in flight, matched by request id.
/// </summary>
public sealed class AppSession : IAsyncDisposable
{
    private readonly RequestConnection _connection;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;

    internal AppSession(Socket socket, string serverId, ProtocolLimits limits, TimeSpan timeout, TimeProvider time)
    {
        _connection = new RequestConnection(socket, limits, FrameType.Result, "the app server connection");
        ServerId = serverId;
        _timeout = timeout;
        _time = time;
    }

    /// <summary>The id the app server gave in CLAIM-OK.</summary>
    public string ServerId { get; }

    /// <summary>The app server's address.</summary>
    public IPEndPoint RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>The local address the app server sees.</summary>
    public IPEndPoint LocalEndPoint => _connection.LocalEndPoint;

    /// <summary>
    /// Runs <paramref name="task"/> on the app server and returns its RESULT. Throws <see cref="VipRejectedException"/>
    /// when the app server answers REJECT, <see cref="IOException"/> or <see cref="TimeoutException"/> when the connection fails.
    /// </summary>
    public async Task<TaskResult> ExecuteAsync(TaskRequest task, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var frame = await _connection.RequestAsync(task, _timeout, _time, cancellationToken).ConfigureAwait(false);
        return frame.Type == FrameType.Reject ? throw new VipRejectedException(Reject.Read(frame.Payload)) : TaskResult.Read(frame.Payload);
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}
