using System.Buffers;
using System.Net;
using System.Text;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Dispatch.Tier2;

/// <summary>
/// Sends ADMIN commands to one tier-2 daemon's control port and returns its ADMIN-RESULT (see
/// <see cref="Tier2AdminCommands"/> for the commands). Used by <c>vipd ctl</c>; several commands may be in
/// flight at once.
/// </summary>
public sealed class Tier2AdminClient : IAsyncDisposable
{
    private readonly FrameConnection _connection;
    private readonly PendingRequests<AdminAnswer> _pending = new();
    private readonly string _token;
    private readonly Task _receive;

    private Tier2AdminClient(FrameConnection connection, string token)
    {
        _connection = connection;
        _token = token;
        _receive = connection.RunAsync(OnFrame);
        _ = _receive.ContinueWith(
            static (_, s) => ((PendingRequests<AdminAnswer>)s!).FailAll(new IOException("the tier-2 daemon closed the control connection")),
            _pending, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>The daemon's address.</summary>
    public IPEndPoint RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>Connects to a tier-2 control port.</summary>
    /// <param name="endPoint">The control address.</param>
    /// <param name="token">The admin token (empty when the daemon has none configured: it then refuses every command).</param>
    /// <param name="timeout">Connect timeout.</param>
    /// <param name="cancellationToken">Cancels the connect.</param>
    public static async Task<Tier2AdminClient> ConnectAsync(EndPoint endPoint, string token, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentNullException.ThrowIfNull(token);
        if (Encoding.UTF8.GetByteCount(token) > 255)
        {
            throw new ArgumentException("the admin token is longer than 255 UTF-8 bytes", nameof(token));
        }

        var connection = await FrameConnection.ConnectAsync(endPoint, timeout, null, cancellationToken).ConfigureAwait(false);
        return new Tier2AdminClient(connection, token);
    }

    /// <summary>
    /// Sends one command and waits for the answer. Returns the ADMIN-RESULT (status 0 = ok, otherwise see
    /// <see cref="Tier2AdminCommands"/>); throws <see cref="Tier2AdminException"/> when the daemon answers REJECT
    /// (wrong token: <see cref="RejectCode.Unauthorized"/>), <see cref="IOException"/> when the link drops and
    /// <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    public async Task<AdminResult> SendAsync(string command, IReadOnlyList<string> args, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(args);
        var (id, answer) = _pending.Register();
        try
        {
            await _connection.SendAsync(id, new AdminRequest(_token, command, args), cancellationToken).ConfigureAwait(false);
            var result = await answer.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            if (result.Reject is { } reject)
            {
                throw new Tier2AdminException(reject.Code, reject.Message);
            }

            return result.Result!;
        }
        catch (TimeoutException)
        {
            _pending.Forget(id);
            throw new TimeoutException($"no answer from {RemoteEndPoint} within {timeout.TotalSeconds:0.#} s");
        }
        catch (OperationCanceledException)
        {
            _pending.Forget(id);
            throw;
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync().ConfigureAwait(false);
        await _receive.ConfigureAwait(false);
    }

    private void OnFrame(FrameConnection connection, in Frame frame)
    {
        var payload = frame.Payload.ToArray();
        switch (frame.Type)
        {
            case FrameType.AdminResult:
                _pending.TryComplete(frame.RequestId, new AdminAnswer(AdminResult.Read(payload), null));
                break;
            case FrameType.Reject:
                var reject = Reject.Read(payload);
                if (!_pending.TryComplete(frame.RequestId, new AdminAnswer(null, reject)))
                {
                    // A REJECT for no request of ours (a protocol complaint): fail everything.
                    _pending.FailAll(new Tier2AdminException(reject.Code, reject.Message));
                }

                break;
            default:
                break;
        }
    }

    private readonly record struct AdminAnswer(AdminResult? Result, Reject? Reject);
}

/// <summary>A tier-2 daemon refused an ADMIN command with REJECT.</summary>
public sealed class Tier2AdminException : VipException
{
    /// <summary>Creates the exception.</summary>
    public Tier2AdminException(RejectCode code, string message) : base($"{code}: {message}") => Code = code;

    /// <summary>The REJECT code (<see cref="RejectCode.Unauthorized"/> for a missing or wrong token).</summary>
    public RejectCode Code { get; }
}
