using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Protocol;

namespace Vip.Client;

/// <summary>
/// Submits tasks through the VIP address and follows the answer: <see cref="SubmitAsync"/> gets the assignment
/// (app server and ticket), <see cref="ClaimAsync"/> connects to the app server and presents the ticket, and
/// <see cref="RunAsync"/> does both and runs the task. Thread-safe: one client pipelines many tasks over one
/// VIP connection (or one UDP socket).
/// </summary>
/// <remarks>
/// Failures are retried up to <see cref="VipClientOptions.MaxAttempts"/> times with jittered exponential backoff:
/// a failed hop (connect, reset, no answer in time) over a fresh VIP connection; REJECT Unavailable, Timeout and
/// Internal likewise; REJECT NoMatchingServer, Overloaded and TooManyInFlight only after the retry-after the
/// answer gives, and only when it is positive and at most <see cref="VipClientOptions.MaxRetryAfter"/>;
/// UnknownClient, Malformed, TooLarge and Unauthorized never. Rejections surface as <see cref="VipRejectedException"/>
/// (or in <see cref="SubmitResult"/> from <see cref="TrySubmitAsync"/>), a path that never answered as
/// <see cref="VipUnreachableException"/>, a refused ticket as <see cref="VipClaimDeniedException"/>.
/// </remarks>
public sealed class VipClient : IAsyncDisposable
{
    private readonly VipClientOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _channelLock = new(1, 1);
    private IVipChannel? _channel;
    private int _disposed;

    /// <summary>Creates a client; nothing is connected until the first task. Throws <see cref="ArgumentException"/> for invalid options.</summary>
    public VipClient(VipClientOptions options, ILogger<VipClient>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The options this client was created with.</summary>
    public VipClientOptions Options => _options;

    /// <summary>Submits <paramref name="task"/> and returns its assignment; throws <see cref="VipRejectedException"/> or <see cref="VipUnreachableException"/>.</summary>
    public async Task<Assignment> SubmitAsync(TaskRequest task, CancellationToken cancellationToken = default)
    {
        var result = await TrySubmitAsync(task, cancellationToken).ConfigureAwait(false);
        return result.Assignment ?? throw new VipRejectedException(result.Rejection!);
    }

    /// <summary>
    /// Submits <paramref name="task"/> and returns the assignment or the final rejection as a value (no exception for
    /// a REJECT). Throws <see cref="VipUnreachableException"/> when no attempt got an answer.
    /// </summary>
    public async Task<SubmitResult> TrySubmitAsync(TaskRequest task, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        Exception? lastError = null;
        for (var attempt = 1; ; attempt++)
        {
            AnswerFrame answer;
            IVipChannel? channel = null;
            try
            {
                channel = await GetChannelAsync(cancellationToken).ConfigureAwait(false);
                var timeout = _options.Transport == VipTransport.Udp ? _options.UdpAttemptTimeout : _options.RequestTimeout;
                answer = await channel.SendAsync(task, timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsHopFailure(ex, cancellationToken))
            {
                lastError = ex;
                await DropChannelAsync(channel).ConfigureAwait(false);
                if (attempt >= _options.MaxAttempts)
                {
                    throw new VipUnreachableException($"no answer from {_options.Vip} after {attempt} attempts: {ex.Message}", ex);
                }

                await BackoffAsync(attempt, ex.Message, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (answer.Type == FrameType.Redirect)
            {
                return new SubmitResult(Assignment.From(Redirect.Read(answer.Payload)), null, attempt);
            }

            var reject = Reject.Read(answer.Payload);
            ClientLog.Rejected(_logger, reject.Code, reject.Message);
            var retry = RetryDelay(reject);
            if (retry is null || attempt >= _options.MaxAttempts)
            {
                return new SubmitResult(null, reject, attempt);
            }

            if (reject.Code is RejectCode.Unavailable or RejectCode.Timeout or RejectCode.Internal)
            {
                // The path failed behind the VIP: a fresh connection lands on another tier-1.
                await DropChannelAsync(channel).ConfigureAwait(false);
            }

            await BackoffAsync(attempt, reject.Code.ToString(), retry.Value, cancellationToken).ConfigureAwait(false);
            _ = lastError;
        }
    }

    /// <summary>
    /// Connects to the assigned app server from the client's address, presents the ticket and returns the session
    /// on CLAIM-OK. Throws <see cref="VipClaimDeniedException"/> on CLAIM-DENIED; <see cref="SocketException"/>,
    /// <see cref="IOException"/> or <see cref="TimeoutException"/> when the app server cannot be reached.
    /// </summary>
    public async Task<AppSession> ClaimAsync(Assignment assignment, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(assignment);
        var socket = await ClientSockets.ConnectAsync(assignment.Server, _options.LocalAddress, _options.ConnectTimeout, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(_options.RequestTimeout);
            (FrameHeader Header, byte[] Payload) answer;
            try
            {
                await socket.SendAsync(ClientSockets.EncodeFrame(1, new Claim(assignment.Ticket)), SocketFlags.None, cts.Token).ConfigureAwait(false);
                answer = await ClientSockets.ReadFrameAsync(socket, _options.Limits.MaxPayload, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"app server {assignment.Server} did not answer the claim in time");
            }

            switch (answer.Header.Type)
            {
                case FrameType.ClaimOk:
                    return new AppSession(socket, ClaimOk.Read(answer.Payload).ServerId, _options.Limits, _options.TaskTimeout, _options.TimeProvider);
                case FrameType.ClaimDenied:
                    var denied = ClaimDenied.Read(answer.Payload);
                    throw new VipClaimDeniedException(denied.Reason, denied.Message);
                default:
                    throw new IOException($"app server {assignment.Server} answered the claim with {answer.Header.Type}");
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Submits <paramref name="task"/>, claims the assigned app server, runs the task there and returns the result.
    /// When the app server cannot be reached or the ticket has expired, the task is submitted again (bounded, with
    /// backoff). Throws <see cref="VipRejectedException"/>, <see cref="VipClaimDeniedException"/> or <see cref="VipUnreachableException"/>.
    /// </summary>
    public async Task<TaskRun> RunAsync(TaskRequest task, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var started = _options.TimeProvider.GetTimestamp();
        var submissions = 0;
        for (var attempt = 1; ; attempt++)
        {
            var submitted = await TrySubmitAsync(task, cancellationToken).ConfigureAwait(false);
            submissions += submitted.Attempts;
            var assignment = submitted.Assignment ?? throw new VipRejectedException(submitted.Rejection!);
            try
            {
                var session = await ClaimAsync(assignment, cancellationToken).ConfigureAwait(false);
                await using (session.ConfigureAwait(false))
                {
                    var result = await session.ExecuteAsync(task, cancellationToken).ConfigureAwait(false);
                    return new TaskRun(assignment, result, _options.TimeProvider.GetElapsedTime(started), submissions);
                }
            }
            catch (Exception ex) when (attempt < _options.MaxAttempts && IsRetryableClaimFailure(ex, cancellationToken))
            {
                await BackoffAsync(attempt, ex.Message, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsHopFailure(ex, cancellationToken))
            {
                throw new VipUnreachableException($"app server {assignment.ServerId} at {assignment.Server} failed: {ex.Message}", ex);
            }
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        var channel = Interlocked.Exchange(ref _channel, null);
        if (channel is not null)
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }

        _channelLock.Dispose();
    }

    private async Task<IVipChannel> GetChannelAsync(CancellationToken cancellationToken)
    {
        var channel = Volatile.Read(ref _channel);
        if (channel is { IsUsable: true })
        {
            return channel;
        }

        await _channelLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            channel = _channel;
            if (channel is { IsUsable: true })
            {
                return channel;
            }

            if (channel is not null)
            {
                _channel = null;
                await channel.DisposeAsync().ConfigureAwait(false);
            }

            channel = _options.Transport == VipTransport.Udp
                ? UdpVipChannel.Open(_options)
                : await TcpVipChannel.OpenAsync(_options, cancellationToken).ConfigureAwait(false);
            _channel = channel;
            return channel;
        }
        finally
        {
            _channelLock.Release();
        }
    }

    private async Task DropChannelAsync(IVipChannel? channel)
    {
        if (channel is null || _options.Transport == VipTransport.Udp)
        {
            return; // UDP has no connection to renew: every datagram may already take another path
        }

        if (Interlocked.CompareExchange(ref _channel, null, channel) == channel)
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }

    // How long to wait before retrying a REJECT, or null when it must not be retried.
    private TimeSpan? RetryDelay(Reject reject)
    {
        var after = TimeSpan.FromMilliseconds(reject.RetryAfterMs);
        switch (reject.Code)
        {
            case RejectCode.Unavailable or RejectCode.Timeout or RejectCode.Internal:
                return after <= _options.MaxRetryAfter ? after : null;
            case RejectCode.NoMatchingServer or RejectCode.Overloaded or RejectCode.TooManyInFlight:
                return after > TimeSpan.Zero && after <= _options.MaxRetryAfter ? after : null;
            default:
                return null;
        }
    }

    private async Task BackoffAsync(int attempt, string reason, TimeSpan atLeast, CancellationToken cancellationToken)
    {
        var exponential = Math.Min(_options.BaseBackoff.Ticks * (1L << Math.Min(attempt - 1, 20)), _options.MaxBackoff.Ticks);
        var jittered = (long)(exponential * (0.5 + _options.Random.NextDouble()));
        var delay = TimeSpan.FromTicks(Math.Max(jittered, atLeast.Ticks + (long)(atLeast.Ticks * 0.1 * _options.Random.NextDouble())));
        ClientLog.Retrying(_logger, attempt, reason, (long)delay.TotalMilliseconds);
        await Task.Delay(delay, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
    }

    private static bool IsHopFailure(Exception ex, CancellationToken cancellationToken)
        => ex is IOException or SocketException or TimeoutException or ObjectDisposedException
           || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    private static bool IsRetryableClaimFailure(Exception ex, CancellationToken cancellationToken)
        => IsHopFailure(ex, cancellationToken)
           || ex is VipClaimDeniedException { Reason: ClaimDenyReason.Expired or ClaimDenyReason.NotExpected };
}
