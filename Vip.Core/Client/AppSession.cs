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
    private readonly FrameConnection _connection;
    private readonly PendingRequests<AnswerFrame> _pending = new();
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly Task _receive;

    internal AppSession(Socket socket, string serverId, ProtocolLimits limits, TimeSpan timeout, TimeProvider time)
    {
        _connection = new FrameConnection(socket, limits);
        _connection.State = this;
        ServerId = serverId;
        _timeout = timeout;
        _time = time;
        _receive = ReceiveAsync();
    }

    /// <summary>The id the app server gave in CLAIM-OK.</summary>
    public string ServerId { get; }

    /// <summary>The app server's address.</summary>
    public IPEndPoint RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>The local address the app server sees.</summary>
    public IPEndPoint LocalEndPoint => _connection.LocalEndPoint;

    private async Task ReceiveAsync()
    {
        Exception error = new IOException("the app server closed the connection");
        try
        {
            await _connection.RunAsync(static (FrameConnection c, in Frame f) =>
            {
                var self = (AppSession)c.State!;
                if (f.Type is FrameType.Result or FrameType.Reject)
                {
                    self._pending.TryComplete(f.RequestId, new AnswerFrame(f.Type, f.Payload.ToArray()));
                }
            }).ConfigureAwait(false);
        }
        catch (VipProtocolException ex)
        {
            error = new IOException("the app server broke the protocol: " + ex.Message, ex);
        }
        finally
        {
            _pending.FailAll(error);
        }
    }

    /// <summary>
    /// Runs <paramref name="task"/> on the app server and returns its RESULT. Throws <see cref="VipRejectedException"/>
    /// when the app server answers REJECT, <see cref="IOException"/> or <see cref="TimeoutException"/> when the connection fails.
    /// </summary>
    public async Task<TaskResult> ExecuteAsync(TaskRequest task, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var (id, answer) = _pending.Register();
        try
        {
            await _connection.SendAsync(id, task, cancellationToken).ConfigureAwait(false);
            var frame = await answer.WaitAsync(_timeout, _time, cancellationToken).ConfigureAwait(false);
            if (frame.Type == FrameType.Reject)
            {
                throw new VipRejectedException(Reject.Read(frame.Payload));
            }

            return TaskResult.Read(frame.Payload);
        }
        finally
        {
            _pending.Forget(id);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync().ConfigureAwait(false);
        await _receive.ConfigureAwait(false);
    }
}
