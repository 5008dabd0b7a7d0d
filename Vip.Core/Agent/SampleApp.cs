using System.Buffers;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Protocol;
using Vip.Tickets;

namespace Vip.Agent;

/// <summary>
/// The sample application: after CLAIM-OK the client sends TASK frames on the claimed connection and gets one
/// RESULT frame per task, with the same request id (tasks on one connection run concurrently, up to a cap, and
/// may finish in any order). The kinds are those of <see cref="SampleTasks"/>. Counts its running tasks, which
/// the agent reports as its load.
/// </summary>
/// <example>
/// <code>
/// var app = new SampleApp();
/// await using var agent = SampleApp.CreateAgent(app, agentOptions, keys);
/// await agent.StartAsync();
/// </code>
/// </example>
public sealed class SampleApp
{
    private readonly SampleTaskOptions _options;
    private readonly ILogger _log;
    private readonly ProtocolLimits _limits;
    private long _active;
    private long _completed;

    /// <summary>Creates the sample app.</summary>
    /// <param name="options">Task caps; null for the defaults.</param>
    /// <param name="limits">Frame caps for the TASK frames; null for the defaults.</param>
    /// <param name="loggerFactory">Logging; null for none.</param>
    public SampleApp(SampleTaskOptions? options = null, ProtocolLimits? limits = null, ILoggerFactory? loggerFactory = null)
    {
        _options = options ?? new SampleTaskOptions();
        _options.Validate();
        _limits = limits ?? ProtocolLimits.Default;
        _limits.Validate();
        _log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Vip.Agent.SampleApp");
    }

    /// <summary>Tasks running now.</summary>
    public uint ActiveTasks => (uint)Math.Max(0, Interlocked.Read(ref _active));

    /// <summary>Tasks finished since start (whatever their status).</summary>
    public long CompletedTasks => Interlocked.Read(ref _completed);

    /// <summary>
    /// An agent running this app: its heartbeats report this app's running tasks as the load.
    /// </summary>
    public static AppServerAgent CreateAgent(SampleApp app, AppServerAgentOptions options, TicketKeyRing? keys = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        options.LoadProvider ??= () => AgentLoad.FromActive(app.ActiveTasks, options.Capacity);
        return new AppServerAgent(options, app.HandleAsync, keys, loggerFactory, timeProvider);
    }

    /// <summary>Serves TASK frames on a claimed connection until the client closes it, it idles out, or the agent stops.</summary>
    public async ValueTask HandleAsync(ClaimedConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        var reader = new FrameReader(_limits);
        using var writeLock = new SemaphoreSlim(1, 1);
        using var slots = new SemaphoreSlim(_options.MaxConcurrentTasksPerConnection, _options.MaxConcurrentTasksPerConnection);
        using var closing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = new List<Task>();
        var client = connection.RemoteEndPoint.ToString();
        try
        {
            while (true)
            {
                ReadResult result;
                using (var idle = CancellationTokenSource.CreateLinkedTokenSource(closing.Token))
                {
                    idle.CancelAfter(_options.IdleTimeout);
                    try
                    {
                        result = await input.ReadAsync(idle.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!closing.IsCancellationRequested)
                    {
                        running.RemoveAll(t => t.IsCompleted);
                        if (running.Count > 0)
                        {
                            continue; // tasks still running: not idle
                        }

                        AgentLog.SampleConnectionEnded(_log, client, "idle timeout");
                        return;
                    }
                }

                var buffer = result.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                try
                {
                    while (reader.TryParse(buffer, ref consumed, ref examined, out var frame))
                    {
                        if (frame.Type == FrameType.Ping)
                        {
                            var data = frame.Payload.ToArray();
                            await WriteAsync(output, writeLock, static (w, s) => FrameWriter.WriteRaw(w, FrameType.Pong, s.Id, s.Data), (Id: frame.RequestId, Data: data), closing.Token).ConfigureAwait(false);
                            continue;
                        }

                        if (frame.Type != FrameType.Task)
                        {
                            await WriteAsync(output, writeLock, static (w, s) => FrameWriter.WriteReject(w, s.Id, RejectCode.Malformed, 0, s.Message),
                                (Id: frame.RequestId, Message: $"the sample app takes TASK frames, not {frame.Type}"), closing.Token).ConfigureAwait(false);
                            return;
                        }

                        TaskRequest task;
                        try
                        {
                            task = TaskRequest.Read(frame.Payload.IsSingleSegment ? frame.Payload.FirstSpan : frame.Payload.ToArray());
                        }
                        catch (VipProtocolException ex)
                        {
                            await WriteAsync(output, writeLock, static (w, s) => FrameWriter.WriteReject(w, s.Id, s.Code, 0, s.Message),
                                (Id: frame.RequestId, Code: ex.RejectCode, ex.Message), closing.Token).ConfigureAwait(false);
                            return;
                        }

                        await slots.WaitAsync(closing.Token).ConfigureAwait(false);
                        running.RemoveAll(t => t.IsCompleted);
                        running.Add(RunOneAsync(frame.RequestId, task, output, writeLock, slots, closing.Token));
                    }

                    if (result.IsCompleted)
                    {
                        AgentLog.SampleConnectionEnded(_log, client, "closed by the client");
                        return;
                    }
                }
                catch (VipProtocolException ex)
                {
                    AgentLog.SampleConnectionEnded(_log, client, ex.Message);
                    return;
                }
                finally
                {
                    input.AdvanceTo(consumed, examined);
                }
            }
        }
        finally
        {
            // Let the tasks already accepted finish and answer (the client may have half-closed), unless stopping.
            try
            {
                await Task.WhenAll(running).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task RunOneAsync(ulong requestId, TaskRequest task, PipeWriter output, SemaphoreSlim writeLock, SemaphoreSlim slots, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _active);
        try
        {
            SampleTaskOutcome outcome;
            try
            {
                outcome = await SampleTasks.RunAsync(task.Kind, task.Attributes, task.Body, _options, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                outcome = SampleTaskOutcome.Fail(SampleTaskStatus.Cancelled, "the task was cancelled");
            }
            catch (Exception ex)
            {
                AgentLog.TaskFailed(_log, ex, task.Kind);
                outcome = SampleTaskOutcome.Fail(SampleTaskStatus.Internal, ex.Message);
            }

            var result = SampleTasks.ToResult(outcome);
            await WriteAsync(output, writeLock, static (w, s) => FrameWriter.Write(w, s.requestId, s.result), (requestId, result), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException)
        {
            // The client went away; nothing to answer.
        }
        finally
        {
            Interlocked.Increment(ref _completed);
            Interlocked.Decrement(ref _active);
            slots.Release();
        }
    }

    private static async ValueTask WriteAsync<TState>(PipeWriter output, SemaphoreSlim writeLock, Action<IBufferWriter<byte>, TState> write, TState state, CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            write(output, state);
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            writeLock.Release();
        }
    }
}
