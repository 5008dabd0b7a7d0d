using System.Buffers.Binary;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// The per-task logic of tier-1, independent of sockets: wraps a TASK into a FORWARD, picks the tier-2 link,
/// matches answers to requests, fails over on unavailability and timeouts, and hands the answer to its sink.
/// </summary>
internal sealed class Tier1Dispatcher
{
    private readonly Tier1Options _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly byte[] _tier1Id;
    private readonly long _timeoutTicks;
    private readonly byte[] _rejectUnavailable;
    private readonly byte[] _rejectTimeout;
    private readonly byte[] _rejectFull;
    private int _roundRobin;

    public Tier1Dispatcher(Tier1Options options, TimeProvider time, ILogger logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _tier1Id = Encoding.UTF8.GetBytes(options.Id);
        _timeoutTicks = (long)(options.RequestTimeout.TotalSeconds * time.TimestampFrequency);
        Table = new PendingTable(options.MaxInFlight);
        Links = new Tier2Link[options.Tier2.Count];
        for (var i = 0; i < Links.Length; i++)
        {
            Links[i] = new Tier2Link(i, options.Tier2[i], this, options, time, logger);
        }

        _rejectUnavailable = EncodeReject(RejectCode.Unavailable, options.UnavailableRetryAfterMs, "no tier-2 daemon is available");
        _rejectTimeout = EncodeReject(RejectCode.Timeout, options.UnavailableRetryAfterMs, "no tier-2 daemon answered in time");
        _rejectFull = EncodeReject(RejectCode.Unavailable, options.UnavailableRetryAfterMs, "tier-1 has too many tasks in flight");
        TooManyInFlight = EncodeReject(RejectCode.TooManyInFlight, options.TooManyInFlightRetryAfterMs, "too many tasks in flight on this connection");
    }

    public PendingTable Table { get; }

    public Tier2Link[] Links { get; }

    public TimeProvider Time => _time;

    /// <summary>The REJECT TooManyInFlight payload, encoded once.</summary>
    public byte[] TooManyInFlight { get; }

    /// <summary>Encodes a REJECT payload.</summary>
    public static byte[] EncodeReject(RejectCode code, uint retryAfterMs, string message)
    {
        var reject = new Reject(code, retryAfterMs, message);
        var bytes = new byte[reject.PayloadSize];
        var w = new PayloadWriter(bytes);
        reject.WritePayload(ref w);
        return bytes;
    }

    /// <summary>
    /// Handles one TASK: validates it (throws <see cref="VipProtocolException"/> when malformed), wraps it into a
    /// FORWARD with the client's address and sends it to a tier-2 link. Exactly one answer reaches
    /// <paramref name="owner"/> later (or at once, when no link can take it).
    /// </summary>
    public void Submit(IAnswerSink owner, ulong clientRequestId, ReadOnlySpan<byte> taskPayload, in WireEndpoint client, SocketAddress? replyTo, FlushBatch batch)
    {
        var task = TaskView.Read(taskPayload);
        Tier1Metrics.TasksReceived.Add(1);
        var slot = Table.TryRent();
        if (slot is null)
        {
            Tier1Metrics.Rejects.Add(1);
            AddFlush(batch, owner.Deliver(clientRequestId, replyTo, FrameType.Reject, _rejectFull));
            return;
        }

        slot.Owner = owner;
        slot.ClientRequestId = clientRequestId;
        slot.ClientHash = Fnv1a(task.ClientId);
        slot.Tried = 0;
        slot.LastFailure = RejectCode.Unavailable;
        if (replyTo is not null)
        {
            slot.ReplyAddress = CopyAddress(replyTo, slot.ReplyAddress);
        }

        // FORWARD := tier1Id:str8 client:endpoint TASK-payload
        var payloadSize = 1 + _tier1Id.Length + client.WireSize + taskPayload.Length;
        var frame = slot.PrepareFrame(FrameHeader.Size + payloadSize);
        new FrameHeader(FrameType.Forward, 0, payloadSize, 0).WriteTo(frame);
        var w = new PayloadWriter(frame[FrameHeader.Size..]);
        w.WriteStr8(_tier1Id);
        w.WriteEndpoint(client);
        w.WriteRaw(taskPayload);
        Dispatch(slot, batch);
    }

    // Sends the slot's FORWARD to the best untried available link, or answers with the final REJECT.
    private void Dispatch(PendingForward slot, FlushBatch batch)
    {
        lock (slot)
        {
            while (true)
            {
                var link = Choose(slot);
                if (link is null)
                {
                    Finish(slot, FrameType.Reject, slot.LastFailure == RejectCode.Timeout ? _rejectTimeout : _rejectUnavailable, batch);
                    return;
                }

                if (slot.Tried != 0)
                {
                    Tier1Metrics.Failovers.Add(1);
                }

                slot.Tried |= 1UL << link.Index;
                slot.Generation++;
                slot.LinkIndex = link.Index;
                slot.SentAt = _time.GetTimestamp();
                slot.InFlight = true;
                if (link.TrySend(slot, batch))
                {
                    return;
                }

                slot.InFlight = false;
                slot.LinkIndex = -1;
            }
        }
    }

    private Tier2Link? Choose(PendingForward slot)
    {
        var links = Links;
        Tier2Link? best = null;
        if (_options.Tier2Choice == Tier2Choice.Hash)
        {
            ulong bestScore = 0;
            foreach (var link in links)
            {
                if ((slot.Tried & (1UL << link.Index)) != 0 || !link.IsAvailable)
                {
                    continue;
                }

                var score = Mix(slot.ClientHash ^ link.Seed);
                if (best is null || score > bestScore)
                {
                    best = link;
                    bestScore = score;
                }
            }

            return best;
        }

        var start = (int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)links.Length);
        for (var i = 0; i < links.Length; i++)
        {
            var link = links[(start + i) % links.Length];
            if ((slot.Tried & (1UL << link.Index)) == 0 && link.IsAvailable)
            {
                return link;
            }
        }

        return null;
    }

    /// <summary>An answer (REDIRECT or REJECT) arrived on <paramref name="link"/> for <paramref name="linkRequestId"/>.</summary>
    public void OnAnswer(Tier2Link link, ulong linkRequestId, FrameType type, ReadOnlySpan<byte> payload, FlushBatch batch)
    {
        var slot = Table.Find(linkRequestId);
        if (slot is null)
        {
            return;
        }

        lock (slot)
        {
            if (!slot.InFlight || slot.LinkIndex != link.Index || slot.Generation != (uint)(linkRequestId >> 32))
            {
                return; // late answer to an attempt that timed out or failed over
            }

            slot.InFlight = false;
            link.OnAnswered();
            if (type == FrameType.Reject && payload.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(payload) == (ushort)RejectCode.Unavailable)
            {
                // Nothing was handed out: another tier-2 may serve it.
                slot.LastFailure = RejectCode.Unavailable;
                Dispatch(slot, batch);
                return;
            }

            Finish(slot, type, payload, batch);
        }
    }

    // Called with the slot locked: the answer goes to the owner and the slot is freed.
    private void Finish(PendingForward slot, FrameType type, ReadOnlySpan<byte> payload, FlushBatch batch)
    {
        var owner = slot.Owner!;
        (type == FrameType.Redirect ? Tier1Metrics.Redirects : Tier1Metrics.Rejects).Add(1);
        AddFlush(batch, owner.Deliver(slot.ClientRequestId, slot.ReplyAddress, type, payload));
        slot.Owner = null;
        slot.LinkIndex = -1;
        Table.Return(slot);
    }

    /// <summary>Fails over every request whose attempt was on <paramref name="link"/> (the link went down).</summary>
    public void OnLinkDown(Tier2Link link, FlushBatch batch)
    {
        var high = Table.HighWater;
        for (var i = 0; i < high; i++)
        {
            var slot = Table.At(i);
            if (slot is null || Volatile.Read(ref slot.LinkIndex) != link.Index)
            {
                continue;
            }

            lock (slot)
            {
                if (!slot.InFlight || slot.LinkIndex != link.Index)
                {
                    continue;
                }

                slot.InFlight = false;
                link.OnAbandoned();
                slot.LastFailure = RejectCode.Unavailable;
                Dispatch(slot, batch);
            }
        }

        batch.FlushAll();
    }

    /// <summary>Fails over every request older than the request timeout; run by the server's timer.</summary>
    public void ExpireTimedOut(FlushBatch batch)
    {
        var now = _time.GetTimestamp();
        var high = Table.HighWater;
        for (var i = 0; i < high; i++)
        {
            var slot = Table.At(i);
            if (slot is null || !Volatile.Read(ref slot.InFlight) || now - Volatile.Read(ref slot.SentAt) < _timeoutTicks)
            {
                continue;
            }

            lock (slot)
            {
                if (!slot.InFlight || now - slot.SentAt < _timeoutTicks)
                {
                    continue;
                }

                slot.InFlight = false;
                Links[slot.LinkIndex].OnTimeout();
                Tier1Metrics.Timeouts.Add(1);
                slot.LastFailure = RejectCode.Timeout;
                Dispatch(slot, batch);
            }
        }

        batch.FlushAll();
    }

    private static void AddFlush(FlushBatch batch, FrameOutbox? outbox)
    {
        if (outbox is not null)
        {
            batch.Add(outbox);
        }
    }

    private static SocketAddress CopyAddress(SocketAddress source, SocketAddress? target)
    {
        if (target is null || target.Family != source.Family || target.Buffer.Length < source.Size)
        {
            target = new SocketAddress(source.Family, source.Size);
        }

        source.Buffer.Span[..source.Size].CopyTo(target.Buffer.Span);
        target.Size = source.Size;
        return target;
    }

    /// <summary>FNV-1a 64 of the client id: stable across processes, so every tier-1 ranks tier-2s alike.</summary>
    internal static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        var h = 14695981039346656037UL;
        foreach (var b in bytes)
        {
            h = (h ^ b) * 1099511628211UL;
        }

        return h;
    }

    /// <summary>The splitmix64 finaliser: spreads the combined key over 64 bits.</summary>
    internal static ulong Mix(ulong x)
    {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9UL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebUL;
        x ^= x >> 31;
        return x;
    }
}
