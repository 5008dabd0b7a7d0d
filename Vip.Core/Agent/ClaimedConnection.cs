using System.IO.Pipelines;
using System.Net;

namespace Vip.Agent;

/// <summary>What the agent knows about an accepted claim: from the ticket, and from the EXPECT notice when one arrived.</summary>
public sealed class ClaimInfo
{
    internal ClaimInfo(ulong ticketId, IPEndPoint client, DateTimeOffset expires, ExpectNotice? notice)
    {
        TicketId = ticketId;
        Client = client;
        Expires = expires;
        Kind = notice?.Kind;
        TaskAttributes = notice?.Attributes ?? [];
        Expected = notice is not null;
    }

    /// <summary>The ticket id (the task id the tier-2 daemon gave this assignment).</summary>
    public ulong TicketId { get; }

    /// <summary>The connecting client's address and port.</summary>
    public IPEndPoint Client { get; }

    /// <summary>When the ticket expires.</summary>
    public DateTimeOffset Expires { get; }

    /// <summary>The task kind from the EXPECT notice; null when no notice arrived (non-strict mode).</summary>
    public string? Kind { get; }

    /// <summary>The task's attributes from the EXPECT notice; empty when none arrived.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> TaskAttributes { get; }

    /// <summary>True when the EXPECT notice for this ticket had arrived.</summary>
    public bool Expected { get; }
}

/// <summary>
/// A client connection whose ticket the agent accepted (CLAIM-OK sent), handed to the application. The
/// application reads and writes <see cref="Transport"/> (or <see cref="AsStream"/>); the agent closes the
/// connection when the handler returns.
/// </summary>
public sealed class ClaimedConnection
{
    private Stream? _stream;

    internal ClaimedConnection(IDuplexPipe transport, ClaimInfo claim, IPEndPoint remote, IPEndPoint local, CancellationToken closed)
    {
        Transport = transport;
        Claim = claim;
        RemoteEndPoint = remote;
        LocalEndPoint = local;
        Closed = closed;
    }

    /// <summary>The connection's bytes as a duplex pipe, positioned just after the CLAIM frame.</summary>
    public IDuplexPipe Transport { get; }

    /// <summary>The accepted claim.</summary>
    public ClaimInfo Claim { get; }

    /// <summary>The client's address.</summary>
    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>This server's address on the connection.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Cancelled when the agent stops.</summary>
    public CancellationToken Closed { get; }

    /// <summary>The connection as a <see cref="Stream"/> (over <see cref="Transport"/>; do not mix the two).</summary>
    public Stream AsStream() => _stream ??= new DuplexPipeStream(Transport);

    // Reads from the pipe's reader and writes (and flushes) to its writer.
    private sealed class DuplexPipeStream(IDuplexPipe pipe) : Stream
    {
        private readonly Stream _read = pipe.Input.AsStream(leaveOpen: true);
        private readonly Stream _write = pipe.Output.AsStream(leaveOpen: true);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => _write.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => _write.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => _read.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _read.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _read.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => _write.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _write.WriteAsync(buffer, cancellationToken);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _write.WriteAsync(buffer, offset, count, cancellationToken);
    }
}

/// <summary>Handles a claimed connection; the agent closes it when the returned task completes.</summary>
public delegate ValueTask ClaimedConnectionHandler(ClaimedConnection connection, CancellationToken cancellationToken);

/// <summary>An EXPECT notice as the agent keeps it.</summary>
internal sealed record ExpectNotice(ulong TicketId, Protocol.WireEndpoint Client, long ExpiresUnixMs, string Kind, KeyValuePair<string, string>[] Attributes);
