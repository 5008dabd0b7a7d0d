using System.Net;
using Microsoft.Extensions.Logging;

namespace Vip.Tickets;

/// <summary>Log messages of the ticket area (event ids 4100..4199).</summary>
internal static partial class TicketsLog
{
    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Ticket {TicketId} from {Client} denied: {Reason}")]
    public static partial void TicketDenied(ILogger logger, ulong ticketId, TicketStatus reason, IPAddress? client);
}
