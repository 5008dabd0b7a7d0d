using System.Buffers;
using System.Text;
using Vip.Protocol;
using Vip.Selection;

namespace Vip.Fuzz;

/// <summary>What a parser made of one fuzz input. Anything else (another exception, a hang) is a bug.</summary>
internal enum FuzzOutcome
{
    /// <summary>At least one frame (or header, or expression) was parsed and nothing was wrong.</summary>
    Accepted,
    /// <summary>The parser asked for more bytes.</summary>
    NeedMore,
    /// <summary>The parser raised its documented exception.</summary>
    Rejected,
}

/// <summary>A parser broke one of the properties a fuzz target checks (not a documented rejection).</summary>
internal sealed class FuzzInvariantException(string message) : Exception(message);

/// <summary>
/// The fuzz targets. Each takes raw bytes, drives one parser the way the servers do, and checks more than
/// "no crash": split and contiguous input must agree, a stream and a datagram must agree, and whatever parses
/// must re-encode to the same bytes. The first input byte chooses where the stream is cut into segments.
/// </summary>
internal static class FuzzTargets
{
    /// <summary>The payload cap the frame target runs with (small, so the fuzzer reaches the cap check).</summary>
    public const int FrameMaxPayload = 4096;

    // Created on first use, not in a static constructor: under the fuzzer, instrumented Vip.Core code must not run
    // before SharpFuzz has attached the coverage map (it would write through a null pointer).
    private static FrameReader? _frames;
    private static ProxyProtocolReader? _proxy;

    private static FrameReader Frames => _frames ??= new FrameReader(new ProtocolLimits { MaxPayload = FrameMaxPayload });

    private static ProxyProtocolReader Proxy => _proxy ??= new ProxyProtocolReader(ProxyProtocol.DefaultMaxLength);

    /// <summary>Target names, as given on the command line.</summary>
    public static readonly string[] Names = ["frame", "proxy", "requirement"];

    /// <summary>Runs the named target on one input.</summary>
    public static FuzzOutcome Run(string target, ReadOnlySpan<byte> data) => target switch
    {
        "frame" => Frame(data),
        "proxy" => ProxyHeaderTarget(data),
        "requirement" => Requirement(data),
        _ => throw new ArgumentException($"unknown fuzz target '{target}' (known: {string.Join(", ", Names)})", nameof(target)),
    };

    // ---- frame: FrameReader.TryParse over a stream, every frame decoded by type, ParseDatagram ----

    /// <summary>Frame codec target: byte 0 picks the cuts, the rest is a TCP stream (and, separately, a datagram).</summary>
    public static FuzzOutcome Frame(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return FuzzOutcome.NeedMore;
        }

        var bytes = data[1..].ToArray();
        var whole = ParseFrames(new ReadOnlySequence<byte>(bytes));
        var split = ParseFrames(Segments.Split(bytes, data[0]));
        if (whole != split)
        {
            throw new FuzzInvariantException($"a stream cut into segments parsed differently: whole=[{whole}] split=[{split}]");
        }

        var datagram = ParseDatagram(bytes);
        // One datagram = exactly one frame: it is accepted exactly when the stream held one whole valid frame and nothing else.
        var streamHoldsOneFrame = whole.EndsWith(";end", StringComparison.Ordinal) && whole.Count(c => c == ';') == 1;
        if ((datagram is not null) != streamHoldsOneFrame || (datagram is not null && whole != datagram + "end"))
        {
            throw new FuzzInvariantException($"stream and datagram disagree: stream=[{whole}] datagram=[{datagram}]");
        }

        return whole.Contains("error:", StringComparison.Ordinal) ? FuzzOutcome.Rejected
            : whole.Contains(';', StringComparison.Ordinal) ? FuzzOutcome.Accepted
            : FuzzOutcome.NeedMore;
    }

    // Returns a transcript: "type/id/len;" per frame, then "end" (all bytes used), "need-more", or "error:Code".
    private static string ParseFrames(ReadOnlySequence<byte> input)
    {
        var transcript = new System.Text.StringBuilder();
        var consumed = input.Start;
        var examined = input.End;
        try
        {
            while (true)
            {
                var before = input.Slice(consumed).Length;
                if (!Frames.TryParse(input, ref consumed, ref examined, out var frame))
                {
                    if (!examined.Equals(input.End))
                    {
                        throw new FuzzInvariantException("TryParse asked for more without examining everything");
                    }

                    transcript.Append(before == 0 ? "end" : "need-more");
                    return transcript.ToString();
                }

                var after = input.Slice(consumed).Length;
                if (before - after != FrameHeader.Size + frame.Header.Length || frame.Payload.Length != frame.Header.Length
                    || frame.Header.Length > FrameMaxPayload || frame.Header.Length < 0)
                {
                    throw new FuzzInvariantException($"frame bookkeeping is wrong: used {before - after} bytes for length {frame.Header.Length}");
                }

                DecodeAndReencode(frame.Type, frame.RequestId, frame.Payload.ToArray());
                transcript.Append((byte)frame.Type).Append('/').Append(frame.RequestId).Append('/').Append(frame.Header.Length).Append(';');
            }
        }
        catch (VipProtocolException ex)
        {
            CheckException(ex);
            return transcript.Append("error:").Append(ex.Error).ToString();
        }
    }

    private static string? ParseDatagram(byte[] bytes)
    {
        try
        {
            var header = Frames.ParseDatagram(bytes, out var payload);
            if (payload.Length != header.Length)
            {
                throw new FuzzInvariantException("datagram payload length differs from the header's");
            }

            DecodeAndReencode(header.Type, header.RequestId, payload.ToArray());
            return $"{(byte)header.Type}/{header.RequestId}/{header.Length};";
        }
        catch (VipProtocolException ex)
        {
            CheckException(ex);
            return null;
        }
    }

    /// <summary>Decodes a payload by its frame type and checks that re-encoding the record gives back the same bytes.</summary>
    internal static void DecodeAndReencode(FrameType type, ulong requestId, byte[] payload)
    {
        switch (type)
        {
            case FrameType.Task:
                var task = TaskRequest.Read(payload);
                var view = TaskView.Read(payload).ToRequest();
                if (view.ClientId != task.ClientId || view.Kind != task.Kind || view.Requirement != task.Requirement
                    || !view.Body.Span.SequenceEqual(task.Body.Span) || !view.Attributes.SequenceEqual(task.Attributes))
                {
                    throw new FuzzInvariantException("TaskView and TaskRequest disagree");
                }

                Same(task, requestId, payload);
                break;
            case FrameType.Forward:
                var forward = ForwardRequest.Read(payload);
                var fv = ForwardView.Read(payload);
                if (fv.Client != forward.Client || fv.Task.ToRequest().ClientId != forward.Task.ClientId)
                {
                    throw new FuzzInvariantException("ForwardView and ForwardRequest disagree");
                }

                Same(forward, requestId, payload);
                break;
            case FrameType.Redirect: Same(Redirect.Read(payload), requestId, payload); break;
            case FrameType.Reject: Same(Reject.Read(payload), requestId, payload); break;
            case FrameType.Result: Same(TaskResult.Read(payload), requestId, payload); break;
            case FrameType.Register: Same(Register.Read(payload), requestId, payload); break;
            case FrameType.RegisterOk: Same(RegisterOk.Read(payload), requestId, payload); break;
            case FrameType.Heartbeat: Same(Heartbeat.Read(payload), requestId, payload); break;
            case FrameType.Deregister: Same(Deregister.Read(payload), requestId, payload); break;
            case FrameType.Expect: Same(Expect.Read(payload), requestId, payload); break;
            case FrameType.Claim: Same(Claim.Read(payload), requestId, payload); break;
            case FrameType.ClaimOk: Same(ClaimOk.Read(payload), requestId, payload); break;
            case FrameType.ClaimDenied: Same(ClaimDenied.Read(payload), requestId, payload); break;
            case FrameType.Ping or FrameType.Pong: Same(Ping.Read(payload), requestId, payload); break;
            case FrameType.Admin: Same(AdminRequest.Read(payload), requestId, payload); break;
            case FrameType.AdminResult: Same(AdminResult.Read(payload), requestId, payload); break;
            default: throw new FuzzInvariantException($"the reader returned a frame of unknown type {(byte)type}");
        }
    }

    private static void Same<T>(T message, ulong requestId, byte[] original) where T : IFrameMessage<T>
    {
        if (message.PayloadSize != original.Length)
        {
            throw new FuzzInvariantException($"{T.FrameType}: PayloadSize {message.PayloadSize} but {original.Length} bytes were read");
        }

        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, requestId, message);
        if (!w.WrittenSpan[FrameHeader.Size..].SequenceEqual(original))
        {
            throw new FuzzInvariantException($"{T.FrameType}: re-encoding the decoded record gives different bytes");
        }
    }

    private static void CheckException(VipProtocolException ex)
    {
        if (!Enum.IsDefined(ex.Error) || string.IsNullOrEmpty(ex.Message))
        {
            throw new FuzzInvariantException($"protocol error without a defined code or message: {ex.Error}");
        }
    }

    // ---- proxy: ProxyProtocolReader.TryParse over a stream, ParseDatagram, writer round trip ----

    /// <summary>PROXY v2 target: byte 0 picks the cuts, the rest is the start of a backend connection (and a datagram).</summary>
    public static FuzzOutcome ProxyHeaderTarget(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return FuzzOutcome.NeedMore;
        }

        var bytes = data[1..].ToArray();
        var whole = ParseProxy(new ReadOnlySequence<byte>(bytes), out var header);
        var split = ParseProxy(Segments.Split(bytes, data[0]), out _);
        if (whole != split)
        {
            throw new FuzzInvariantException($"a PROXY header cut into segments parsed differently: whole={whole} split={split}");
        }

        string datagram;
        try
        {
            var h = Proxy.ParseDatagram(bytes, out var length);
            datagram = $"{h}@{length}";
        }
        catch (VipProtocolException ex)
        {
            CheckException(ex);
            datagram = "error";
        }

        // A datagram either holds the whole header (then it reads the same) or it is an error; "need more" in a
        // stream is an error for a datagram.
        var streamAnswer = whole.StartsWith("error", StringComparison.Ordinal) || whole == "need-more" ? "error" : whole;
        if (datagram != streamAnswer)
        {
            throw new FuzzInvariantException($"PROXY stream and datagram disagree: stream={whole} datagram={datagram}");
        }

        if (header is { } parsed)
        {
            if (!parsed.IsLocal)
            {
                // What we read, we can write, and it reads back the same.
                Span<byte> buffer = stackalloc byte[ProxyProtocol.MaxWrittenLength];
                var n = ProxyProtocolWriter.Write(buffer, parsed);
                var again = Proxy.ParseDatagram(buffer[..n], out var used);
                if (again != parsed || used != n)
                {
                    throw new FuzzInvariantException($"PROXY header {parsed} does not survive a write and re-read ({again})");
                }
            }

            return FuzzOutcome.Accepted;
        }

        return whole == "need-more" ? FuzzOutcome.NeedMore : FuzzOutcome.Rejected;
    }

    private static string ParseProxy(ReadOnlySequence<byte> input, out ProxyHeader? header)
    {
        header = null;
        var consumed = input.Start;
        var examined = input.End;
        try
        {
            if (!Proxy.TryParse(input, ref consumed, ref examined, out var h))
            {
                if (!examined.Equals(input.End))
                {
                    throw new FuzzInvariantException("PROXY TryParse asked for more without examining everything");
                }

                if (input.Length >= ProxyProtocol.FixedHeaderLength + Proxy.MaxLength)
                {
                    throw new FuzzInvariantException($"PROXY reader asked for more after {input.Length} bytes, past its cap");
                }

                return "need-more";
            }

            var used = input.Slice(input.Start, consumed).Length;
            if (used < ProxyProtocol.FixedHeaderLength || used > ProxyProtocol.FixedHeaderLength + Proxy.MaxLength)
            {
                throw new FuzzInvariantException($"PROXY header consumed {used} bytes");
            }

            header = h;
            return $"{h}@{used}";
        }
        catch (VipProtocolException ex)
        {
            CheckException(ex);
            return "error:" + ex.Error;
        }
    }

    // ---- requirement: RequirementParser.Parse / TryParse, canonical form, matching ----

    private static readonly Dictionary<string, string>[] Servers =
    [
        [],
        new() { ["region"] = "eu", ["cores"] = "8", ["gpu"] = "true", ["mem"] = "16.5" },
        new() { ["region"] = "us", ["cores"] = "NaN", ["mem"] = "1e309", ["zone"] = "-0", ["a"] = "" },
        new() { ["cores"] = "-4", ["x"] = "+1", ["y"] = "0x10", ["z"] = "1_000" },
    ];

    /// <summary>
    /// Requirement target: byte 0 is unused (kept so all corpora share one layout), the rest is the expression as
    /// UTF-8 (a TASK's requirement field is validated UTF-8). TryParse and Parse must agree; a parsed expression's
    /// canonical text must parse to the same canonical text and match every sample server the same way.
    /// </summary>
    public static FuzzOutcome Requirement(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return FuzzOutcome.NeedMore;
        }

        var text = Encoding.UTF8.GetString(data[1..]);
        var ok = RequirementParser.TryParse(text, null, out var expression, out var error);
        RequirementExpression? thrown = null;
        RequirementSyntaxException? caught = null;
        try
        {
            thrown = RequirementParser.Parse(text);
        }
        catch (RequirementSyntaxException ex)
        {
            caught = ex;
        }

        if (ok != (thrown is not null) || (!ok && (caught is null || caught.Position != error!.Position || caught.Reason != error.Reason)))
        {
            throw new FuzzInvariantException($"TryParse ({ok}) and Parse ({thrown is not null}) disagree on '{text}'");
        }

        if (!ok)
        {
            if (error!.Position < 0 || error.Position > Math.Max(text.Length, RequirementLimits.Default.MaxLength) || string.IsNullOrEmpty(error.Reason))
            {
                throw new FuzzInvariantException($"syntax error at position {error.Position} of a {text.Length}-character requirement");
            }

            return FuzzOutcome.Rejected;
        }

        var canonical = expression!.ToString();
        if (!RequirementParser.TryParse(canonical, null, out var again, out var againError))
        {
            throw new FuzzInvariantException($"canonical form '{canonical}' of '{text}' does not parse: {againError.Message}");
        }

        if (again.ToString() != canonical || again.Terms.Length != expression.Terms.Length
            || again.FilterCount != expression.FilterCount || again.PreferenceCount != expression.PreferenceCount)
        {
            throw new FuzzInvariantException($"canonical form is not stable: '{text}' -> '{canonical}' -> '{again}'");
        }

        foreach (var server in Servers)
        {
            if (expression.Matches(server) != again.Matches(server) || expression.PreferenceScore(server) != again.PreferenceScore(server))
            {
                throw new FuzzInvariantException($"'{text}' and its canonical form '{canonical}' match differently");
            }
        }

        return FuzzOutcome.Accepted;
    }
}

/// <summary>Cuts a byte array into a multi-segment sequence at positions derived from one selector byte.</summary>
internal static class Segments
{
    /// <summary>Selector 0 keeps one segment; otherwise up to three cuts, one of them often a single byte.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, byte selector)
    {
        if (selector == 0 || bytes.Length < 2)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        var cuts = new SortedSet<int> { selector % bytes.Length, (selector % bytes.Length) + 1, (selector * 7) % bytes.Length };
        cuts.RemoveWhere(c => c <= 0 || c >= bytes.Length);
        if (cuts.Count == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        Segment? first = null, last = null;
        var start = 0;
        foreach (var end in cuts.Append(bytes.Length))
        {
            var segment = new Segment(bytes.AsMemory(start, end - start), last);
            first ??= segment;
            last = segment;
            start = end;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, Segment? previous)
        {
            Memory = memory;
            if (previous is not null)
            {
                RunningIndex = previous.RunningIndex + previous.Memory.Length;
                previous.Next = this;
            }
        }
    }
}
