using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Vip.Client;
using Vip.Daemons.Hosting;
using Vip.Protocol;

namespace Vip.Daemons.Roles;

/// <summary>
/// <c>vipd submit</c>: submits one task through the VIP address and prints the assignment; with <c>--run</c> also
/// connects to the app server, presents the ticket, runs the task and prints its result.
/// </summary>
internal sealed class SubmitRole : IRole
{
    private readonly TextWriter _out;
    private readonly TextWriter _err;

    public SubmitRole()
        : this(Console.Out, Console.Error)
    {
    }

    internal SubmitRole(TextWriter output, TextWriter error)
    {
        _out = output;
        _err = error;
    }

    public string Name => "submit";

    public string Summary => "submit one task through the VIP address (and run it with --run)";

    public string Usage => """
        usage: vipd submit --vip HOST:PORT --client ID --kind KIND [--require EXPR] [--attr k=v ...]
                           [--arg N | --body TEXT] [--run] [--udp] [--json] [--local ADDRESS] [--timeout SECONDS]

          --vip        the VIP address (or a tier-1 daemon)
          --client     the client id (its attributes live in the tier-2 store: vipd ctl clients set ID k=v)
          --kind       what to compute; the sample app runs sha256, primes, sleep, echo
          --require    requirement expression matched against the app servers (e.g. "cpu>=8, region=eu")
          --attr k=v   task attribute (repeatable)
          --arg N      numeric argument as the body (primes: n, sleep: milliseconds)
          --body TEXT  the body as UTF-8 text (sha256, echo)
          --run        connect to the assigned app server, present the ticket, run the task, print the result
          --udp        submit over UDP (one datagram) instead of TCP
          --json       print one JSON object: status (redirect|reject|error|claim-denied), server, address,
                       expires, attempts; with --run result {status, output}; for a rejection code and message
          --local      local address to send from (the app server checks the ticket against it)
          --timeout    seconds to wait for each answer (default 5)

        exit codes: 0 assigned (and, with --run, the task ran with status 0); 1 rejected, unreachable, claim denied
        or the task failed; 64 usage error.
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var a = ParseArgs(args);
        var options = new VipClientOptions
        {
            Vip = ConfigParse.Endpoint(a.Vip, "--vip", allowPortZero: false),
            Transport = a.Udp ? VipTransport.Udp : VipTransport.Tcp,
            LocalAddress = a.Local,
            RequestTimeout = a.Timeout,
            UdpAttemptTimeout = TimeSpan.FromTicks(Math.Min(a.Timeout.Ticks, TimeSpan.FromSeconds(1).Ticks)),
        };
        var body = a.Arg is not null ? Encoding.UTF8.GetBytes(a.Arg) : Encoding.UTF8.GetBytes(a.Body ?? "");
        var task = new TaskRequest(a.Client, a.Kind, a.Attributes, a.Require ?? "", body);
        await using var client = new VipClient(options);
        Assignment? assignment = null;
        try
        {
            var submitted = await client.TrySubmitAsync(task).ConfigureAwait(false);
            if (submitted.Rejection is { } reject)
            {
                Print(a.Json, new Dictionary<string, object?>
                {
                    ["status"] = "reject", ["code"] = reject.Code.ToString(), ["message"] = reject.Message,
                    ["retryAfterMs"] = reject.RetryAfterMs, ["attempts"] = submitted.Attempts,
                }, $"rejected: {reject.Code}: {reject.Message}" + (reject.RetryAfterMs > 0 ? $" (retry after {reject.RetryAfterMs} ms)" : ""));
                return ExitCodes.Failed;
            }

            assignment = submitted.Assignment!;
            var fields = AssignmentFields(assignment, submitted.Attempts);
            if (!a.Run)
            {
                Print(a.Json, fields, Describe(assignment));
                return ExitCodes.Ok;
            }

            var started = TimeProvider.System.GetTimestamp();
            var session = await client.ClaimAsync(assignment).ConfigureAwait(false);
            TaskResult result;
            await using (session.ConfigureAwait(false))
            {
                result = await session.ExecuteAsync(task).ConfigureAwait(false);
            }

            var elapsed = TimeProvider.System.GetElapsedTime(started);
            var output = OutputText(result.Output.Span);
            fields["result"] = new Dictionary<string, object?> { ["status"] = result.Status, ["output"] = output, ["elapsedMs"] = Math.Round(elapsed.TotalMilliseconds, 3) };
            Print(a.Json, fields, Describe(assignment) + Environment.NewLine
                + $"result: {output}" + (result.Status != 0 ? $" (status {result.Status})" : "") + string.Create(CultureInfo.InvariantCulture, $"   [{elapsed.TotalMilliseconds:0.0} ms on {session.ServerId}]"));
            return result.Status == 0 ? ExitCodes.Ok : ExitCodes.Failed;
        }
        catch (VipClaimDeniedException ex)
        {
            var fields = AssignmentFields(assignment!, 1);
            fields["status"] = "claim-denied";
            fields["code"] = ex.Reason.ToString();
            fields["message"] = ex.Message;
            Print(a.Json, fields, $"claim denied by {assignment!.ServerId}: {ex.Reason}: {ex.Message}");
            return ExitCodes.Failed;
        }
        catch (Exception ex) when (ex is VipUnreachableException or VipRejectedException or IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
            Print(a.Json, new Dictionary<string, object?> { ["status"] = "error", ["message"] = ex.Message }, "error: " + ex.Message);
            return ExitCodes.Failed;
        }
    }

    private static Dictionary<string, object?> AssignmentFields(Assignment assignment, int attempts) => new()
    {
        ["status"] = "redirect",
        ["server"] = assignment.ServerId,
        ["address"] = assignment.Server.ToString(),
        ["expires"] = assignment.ExpiresAt.ToString("O", CultureInfo.InvariantCulture),
        ["ticketBytes"] = assignment.Ticket.Length,
        ["alternatives"] = assignment.Alternatives.Select(x => new Dictionary<string, object?> { ["server"] = x.ServerId, ["address"] = x.Server.ToString() }).ToArray(),
        ["attempts"] = attempts,
    };

    private static string Describe(Assignment x)
    {
        var text = $"assigned to {x.ServerId} at {x.Server} (ticket {x.Ticket.Length} bytes, expires {x.ExpiresAt:HH:mm:ss.fff}Z)";
        return x.Alternatives.Count == 0 ? text : text + Environment.NewLine + "alternatives: " + string.Join(", ", x.Alternatives.Select(v => $"{v.ServerId} at {v.Server}"));
    }

    private static string OutputText(ReadOnlySpan<byte> output)
        => System.Text.Unicode.Utf8.IsValid(output) ? Encoding.UTF8.GetString(output) : Convert.ToHexString(output).ToLowerInvariant();

    private void Print(bool json, Dictionary<string, object?> fields, string text)
    {
        if (json)
        {
            _out.WriteLine(JsonSerializer.Serialize(fields));
        }
        else if (fields["status"] as string is "redirect")
        {
            _out.WriteLine(text);
        }
        else
        {
            _err.WriteLine(text);
        }
    }

    private sealed record Args(string Vip, string Client, string Kind, string? Require, List<KeyValuePair<string, string>> Attributes,
        string? Arg, string? Body, bool Run, bool Udp, bool Json, IPAddress? Local, TimeSpan Timeout);

    private static Args ParseArgs(string[] args)
    {
        string? vip = null, client = null, kind = null, require = null, arg = null, body = null;
        bool run = false, udp = false, json = false;
        IPAddress? local = null;
        var timeout = TimeSpan.FromSeconds(5);
        var attrs = new List<KeyValuePair<string, string>>();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new StartupException($"switch {name} needs a value");
            switch (name)
            {
                case "--vip": vip = Value(); break;
                case "--client": client = Value(); break;
                case "--kind": kind = Value(); break;
                case "--require": require = Value(); break;
                case "--arg":
                    arg = Value();
                    if (!long.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                    {
                        throw new StartupException($"--arg '{arg}' is not a whole number");
                    }

                    break;
                case "--body": body = Value(); break;
                case "--attr":
                    var kv = Value();
                    var eq = kv.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        throw new StartupException($"--attr '{kv}' is not key=value");
                    }

                    attrs.Add(KeyValuePair.Create(kv[..eq], kv[(eq + 1)..]));
                    break;
                case "--local":
                    var text = Value();
                    local = IPAddress.TryParse(text, out var address) ? address : throw new StartupException($"--local '{text}' is not an IP address");
                    break;
                case "--timeout":
                    var t = Value();
                    timeout = double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 && s <= 600
                        ? TimeSpan.FromSeconds(s) : throw new StartupException($"--timeout '{t}' is not a number of seconds between 0 and 600");
                    break;
                case "--run": run = true; break;
                case "--udp": udp = true; break;
                case "--json": json = true; break;
                default: throw new StartupException($"unknown switch '{name}' (see vipd submit --help)");
            }
        }

        if (arg is not null && body is not null)
        {
            throw new StartupException("give --arg or --body, not both");
        }

        if (attrs.Select(p => p.Key).Distinct(StringComparer.Ordinal).Count() != attrs.Count)
        {
            throw new StartupException("an --attr key is given twice");
        }

        return new Args(vip ?? throw new StartupException("--vip HOST:PORT is required"),
            client ?? throw new StartupException("--client ID is required"),
            kind ?? throw new StartupException("--kind KIND is required"),
            require, attrs, arg, body, run, udp, json, local, timeout);
    }
}
