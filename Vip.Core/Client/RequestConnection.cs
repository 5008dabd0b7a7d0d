using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Client;

/// <summary>
/// A framed TCP connection on which requests go out with fresh request ids and their answers (one frame type, or
/// REJECT) come back in any order, matched by id. When the connection ends, every waiting request fails. Serves the
/// client's VIP channel (TASK → REDIRECT) and its app-server session (TASK → RESULT).
/// </summary>
internal sealed class RequestConnection : IAsyncDisposable
{
    private readonly FrameConnection _connection;
    private readonly PendingRequests<AnswerFrame> _pending = new();
    private readonly FrameType _answer;
    private readonly string _peer;
    private readonly Task _receive;

    /// <param name="socket">A connected socket (owned from now on).</param>
    /// <param name="limits">Frame caps for what the peer sends.</param>
    /// <param name="answer">The frame type that answers a request (REJECT always does too).</param>
    /// <param name="peer">The peer as errors name it ("the VIP connection", "the app server").</param>
    public RequestConnection(Socket socket, ProtocolLimits limits, FrameType answer, string peer)
    {
        _connection = new FrameConnection(socket, limits) { State = this };
        _answer = answer;
        _peer = peer;
        _receive = ReceiveAsync();
    }

    /// <summary>False once the connection ended (closed, reset, or the peer broke the protocol).</summary>
    public bool IsOpen => !_receive.IsCompleted && !_connection.Closed.IsCancellationRequested;

    public IPEndPoint RemoteEndPoint => _connection.RemoteEndPoint;

    public IPEndPoint LocalEndPoint => _connection.LocalEndPoint;

    /// <summary>
    /// Sends <paramref name="message"/> and waits for its answer; throws <see cref="IOException"/> when the connection
    /// ends first and <see cref="TimeoutException"/> when no answer comes within <paramref name="timeout"/>.
    /// </summary>
    public async Task<AnswerFrame> RequestAsync<T>(T message, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
        where T : IFrameMessage<T>
    {
        var (id, answer) = _pending.Register();
        try
        {
            await _connection.SendAsync(id, message, cancellationToken).ConfigureAwait(false);
            return await answer.WaitAsync(timeout, time, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _pending.Forget(id);
        }
    }

    private async Task ReceiveAsync()
    {
        Exception error = new IOException(_peer + " was closed");
        try
        {
            await _connection.RunAsync(static (FrameConnection c, in Frame f) =>
            {
                var self = (RequestConnection)c.State!;
                if (f.Type == self._answer || f.Type == FrameType.Reject)
                {
                    self._pending.TryComplete(f.RequestId, new AnswerFrame(f.Type, f.Payload.ToArray()));
                }
            }).ConfigureAwait(false);
        }
        catch (VipProtocolException ex)
        {
            error = new IOException(_peer + " broke the protocol: " + ex.Message, ex);
        }
        finally
        {
            _pending.FailAll(error);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync().ConfigureAwait(false);
        await _receive.ConfigureAwait(false);
    }
}
