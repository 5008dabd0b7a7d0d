using System.Text;
using Vip.Protocol;
using Vip.Selection;
using Vip.Tickets;

namespace Vip.Dispatch.Tier2;

public sealed partial class Tier2Server
{
    private static readonly KeyValuePair<string, object?>[] RejectTags = BuildRejectTags();

    /// <summary>
    /// Handles one FORWARD synchronously: select, sign, write the EXPECT into the chosen server's control link
    /// (marked dirty on <paramref name="link"/>, which flushes it before its answers) and the REDIRECT or REJECT
    /// into the tier-1 link's output. Allocates nothing in steady state. Returns false when the frame was
    /// malformed and the link must close.
    /// </summary>
    internal bool Dispatch(ReadOnlySpan<byte> payload, ulong requestId, IDispatchSink link)
    {
        ForwardView forward;
        try
        {
            forward = ForwardView.Read(payload);
        }
        catch (VipProtocolException ex)
        {
            Reject(link, requestId, ex.RejectCode, 0, ex.Message);
            return false;
        }

        var task = forward.Task;
        Span<byte> address = stackalloc byte[16];
        var addressLength = forward.Client.WriteAddress(address);
        var request = new SelectionRequest(task.ClientId, address[..addressLength], task.Kind, EncodedAttributes(payload, task.Attributes), task.Requirement);
        SelectionResult result;
        try
        {
            result = _engine.Select(request);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Tier2Log.DispatchFailed(Log, ex, link.RemoteEndPoint.ToString());
            Reject(link, requestId, RejectCode.Internal, 1000, "the tier-2 daemon failed to select; see its log");
            return true;
        }

        if (!result.IsSelected)
        {
            if (result.Outcome is SelectionOutcome.NoMatchingServer or SelectionOutcome.Overloaded && IsWarmingUp())
            {
                // Not an answer yet: the matching server may simply not have registered with this daemon so far.
                Reject(link, requestId, RejectCode.Unavailable, RetryAfterMs(WarmUpRetryAfter), "this tier-2 daemon has just started and is still hearing from its app servers");
                return true;
            }

            var code = (RejectCode)(ushort)result.Outcome;
            Reject(link, requestId, code, RetryAfterMs(result.RetryAfter), result.Message ?? code.ToString());
            return true;
        }

        // The chosen server, or — when its control link just went away — the best alternative that has one.
        var expires = Time.GetUtcNow().ToUnixTimeMilliseconds() + _lifetimeMs;
        LinkedServer? chosen = null;
        var chosenRank = -1;
        ulong ticketId = 0;
        for (var rank = -1; rank < result.AlternativeCount && chosen is null; rank++)
        {
            var entry = rank < 0 ? result.Server! : result.GetAlternative(rank);
            if (!_linked.TryGetValue(entry.Id, out var candidate))
            {
                continue;
            }

            ticketId = TicketIssuer.NewTicketId();
            var writer = candidate.Link.EnterWrite();
            if (writer is null)
            {
                continue;
            }

            try
            {
                FrameWriter.WriteExpect(writer, ticketId, forward.Client, expires, task.Kind, task.Attributes);
            }
            finally
            {
                candidate.Link.ExitWrite();
            }

            link.MarkDirty(candidate.Link);
            chosen = candidate;
            chosenRank = rank;
        }

        if (chosen is null)
        {
            SelectionEngine.Release(result);
            Reject(link, requestId, RejectCode.Unavailable, RetryAfterMs(_engine.Options.OverloadedRetryAfter), "the chosen app servers have no control link to this tier-2 daemon");
            return true;
        }

        if (chosenRank >= 0)
        {
            SelectionEngine.Release(result); // the ticket went to an alternative, not to the server the engine counted
        }

        Span<byte> ticket = stackalloc byte[TicketIssuer.MaxTicketLength];
        var ticketLength = _issuer.Issue(ticket, chosen.IdUtf8, _addresses.Get(forward.Client), ticketId, expires);
        _expects.Add(1);

        var alternatives = link.Alternatives;
        var count = 0;
        for (var rank = chosenRank + 1; rank < result.AlternativeCount; rank++)
        {
            if (_linked.TryGetValue(result.GetAlternative(rank).Id, out var alt))
            {
                alternatives[count++] = new AlternativeTarget(alt.IdUtf8, alt.Service);
            }
        }

        Tier2Frames.WriteRedirect(link.Output, requestId, chosen.IdUtf8, chosen.Service, expires, ticket[..ticketLength], alternatives.AsSpan(0, count));
        alternatives.AsSpan(0, count).Clear();
        _redirects.Add(1);
        return true;
    }

    private void Reject(IDispatchSink link, ulong requestId, RejectCode code, uint retryAfterMs, string message)
    {
        // Messages are short; encode on the stack so a rejection allocates nothing either.
        Span<byte> utf8 = stackalloc byte[512];
        if (Encoding.UTF8.TryGetBytes(message, utf8, out var n))
        {
            Tier2Frames.WriteReject(link.Output, requestId, code, retryAfterMs, utf8[..n]);
        }
        else
        {
            Tier2Frames.WriteReject(link.Output, requestId, code, retryAfterMs, message);
        }

        var index = (int)code;
        _rejects.Add(1, index < RejectTags.Length ? RejectTags[index] : default);
    }

    // Retry soon: a client's default cap on retry-after is 1 s, and the warm-up lasts a few seconds at most.
    private static readonly TimeSpan WarmUpRetryAfter = TimeSpan.FromMilliseconds(250);

    private static uint RetryAfterMs(TimeSpan retryAfter) => (uint)Math.Clamp(retryAfter.TotalMilliseconds, 0, uint.MaxValue);

    /// <summary>
    /// The task's <c>attrs</c> field as it stands in the frame (count byte included), as the selection request
    /// wants it: <see cref="AttributeList.Raw"/> starts just after the count byte.
    /// </summary>
    private static ReadOnlySpan<byte> EncodedAttributes(ReadOnlySpan<byte> payload, AttributeList attributes)
    {
        if (attributes.Count == 0 || !payload.Overlaps(attributes.Raw, out var offset) || offset < 1)
        {
            return [];
        }

        return payload.Slice(offset - 1, attributes.Raw.Length + 1);
    }

    private static KeyValuePair<string, object?>[] BuildRejectTags()
    {
        var tags = new KeyValuePair<string, object?>[(int)RejectCode.Internal + 1];
        foreach (var code in Enum.GetValues<RejectCode>())
        {
            tags[(int)code] = new("vip.reject.code", code.ToString());
        }

        return tags;
    }
}
