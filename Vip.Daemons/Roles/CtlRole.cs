using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Vip.Daemons.Hosting;
using Vip.Dispatch.Tier2;
using Vip.Protocol;

namespace Vip.Daemons.Roles;

/// <summary>
/// <c>vipd ctl</c>: operates the tier-2 daemons from a shell. Every command goes to every tier-2 control address
/// at once; the answers are compared and any daemon that disagrees or does not answer is reported.
/// </summary>
internal sealed class CtlRole : IRole
{
    private readonly TextWriter _out;
    private readonly TextWriter _err;

    public CtlRole()
        : this(Console.Out, Console.Error)
    {
    }

    internal CtlRole(TextWriter output, TextWriter error)
    {
        _out = output;
        _err = error;
    }

    public string Name => "ctl";

    public string Summary => "operate the tier-2 daemons: servers, clients, networks, explain";

    public string Usage => """
        usage: vipd ctl --control HOST:PORT[,HOST:PORT...] [--token-file PATH] [--timeout SECONDS] [--json] COMMAND

        commands (sent to every tier-2 daemon listed; disagreements and silences are reported):
          servers list                     every app server: id, address, attributes, load, state
          servers drain ID                 stop selecting a server (persisted) ...
          servers undrain ID               ... and select it again
          servers rm ID                    forget a server that is not connected
          clients set ID k=v [k=v ...]     create or replace a client record
          clients get ID                   show a client record
          clients rm ID                    delete a client record
          clients list                     every client record
          networks set CIDR k=v [k=v ...]  client attributes for every address in CIDR
          networks rm CIDR                 delete a network rule
          networks list                    every network rule
          explain --client ID [--require EXPR] [--ip ADDRESS] [--kind KIND]
                                           every server, kept or dropped for that client, and why

        switches also come from configuration: Ctl:Control, Ctl:TokenFile, Ctl:Timeout
        (appsettings.json, or environment VIPD_Ctl__Control=...). The token file holds the admin token
        configured on the tier-2 daemons (Tier2:AdminTokenFile); without it every command is refused.
        exit codes: 0 all answered and agree, 1 a command failed or a daemon did not answer, 2 the daemons disagree,
        64 usage error.
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var switches = new Dictionary<string, string>(StringComparer.Ordinal);
        var words = new List<string>();
        var json = false;
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (a == "--json")
            {
                json = true;
            }
            else if (a is "--control" or "--token-file" or "--timeout" or "--client" or "--require" or "--ip" or "--kind")
            {
                if (i + 1 >= args.Length)
                {
                    throw new StartupException($"switch {a} needs a value");
                }

                switches[a] = args[++i];
            }
            else if (a.StartsWith("--", StringComparison.Ordinal))
            {
                throw new StartupException($"unknown switch '{a}' (see vipd ctl --help)");
            }
            else
            {
                words.Add(a);
            }
        }

        var config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
            .AddEnvironmentVariables("VIPD_")
            .Build();
        var control = switches.GetValueOrDefault("--control") ?? config["Ctl:Control"];
        if (string.IsNullOrWhiteSpace(control))
        {
            throw new StartupException("no tier-2 control address: give --control HOST:PORT[,HOST:PORT...]");
        }

        var endPoints = ParseEndPoints(control);
        var tokenFile = switches.GetValueOrDefault("--token-file") ?? config["Ctl:TokenFile"];
        var token = tokenFile is null ? "" : ReadToken(tokenFile);
        var timeoutText = switches.GetValueOrDefault("--timeout") ?? config["Ctl:Timeout"] ?? "5";
        if (!double.TryParse(timeoutText, NumberStyles.Float, CultureInfo.InvariantCulture, out var timeoutSeconds) || timeoutSeconds <= 0 || timeoutSeconds > 600)
        {
            throw new StartupException($"--timeout '{timeoutText}' is not a number of seconds between 0 and 600");
        }

        var (command, commandArgs) = ParseCommand(words, switches);
        var results = await FanOutAsync(endPoints, token, command, commandArgs, TimeSpan.FromSeconds(timeoutSeconds)).ConfigureAwait(false);
        return Report(command, results, json);
    }

    internal static IReadOnlyList<IPEndPoint> ParseEndPoints(string list)
    {
        var result = new List<IPEndPoint>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!IPEndPoint.TryParse(part, out var ep) || ep.Port == 0)
            {
                throw new StartupException($"'{part}' is not a HOST:PORT address (an IP address and a port)");
            }

            result.Add(ep);
        }

        if (result.Count == 0)
        {
            throw new StartupException("no tier-2 control address given");
        }

        return result;
    }

    private static string ReadToken(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"cannot read the admin token file '{path}': {ex.Message}", ex);
        }
    }

    internal static (string Command, List<string> Args) ParseCommand(List<string> words, Dictionary<string, string> switches)
    {
        if (words.Count == 0)
        {
            throw new StartupException("no command given (servers list, clients get ID, explain --client ID, ...; see --help)");
        }

        string Need(int index, string what)
            => index < words.Count ? words[index] : throw new StartupException($"'{string.Join(' ', words)}' needs {what}");

        void NoMore(int count)
        {
            if (words.Count > count)
            {
                throw new StartupException($"unexpected '{words[count]}' after '{string.Join(' ', words.Take(count))}'");
            }
        }

        switch (words[0])
        {
            case "servers":
                switch (Need(1, "list, drain, undrain or rm"))
                {
                    case "list":
                        NoMore(2);
                        return (Tier2AdminCommands.ServersList, []);
                    case "drain":
                        NoMore(3);
                        return (Tier2AdminCommands.ServersDrain, [Need(2, "a server id")]);
                    case "undrain":
                        NoMore(3);
                        return (Tier2AdminCommands.ServersUndrain, [Need(2, "a server id")]);
                    case "rm":
                        NoMore(3);
                        return (Tier2AdminCommands.ServersRemove, [Need(2, "a server id")]);
                }

                break;
            case "clients":
                switch (Need(1, "set, get, rm or list"))
                {
                    case "set":
                        return (Tier2AdminCommands.ClientsSet, [Need(2, "a client id"), .. CheckPairs(words.Skip(3))]);
                    case "get":
                        NoMore(3);
                        return (Tier2AdminCommands.ClientsGet, [Need(2, "a client id")]);
                    case "rm":
                        NoMore(3);
                        return (Tier2AdminCommands.ClientsRemove, [Need(2, "a client id")]);
                    case "list":
                        NoMore(2);
                        return (Tier2AdminCommands.ClientsList, []);
                }

                break;
            case "networks":
                switch (Need(1, "set, rm or list"))
                {
                    case "set":
                        return (Tier2AdminCommands.NetworksSet, [Need(2, "a CIDR such as 10.1.0.0/16"), .. CheckPairs(words.Skip(3))]);
                    case "rm":
                        NoMore(3);
                        return (Tier2AdminCommands.NetworksRemove, [Need(2, "a CIDR")]);
                    case "list":
                        NoMore(2);
                        return (Tier2AdminCommands.NetworksList, []);
                }

                break;
            case "explain":
                NoMore(1);
                if (!switches.TryGetValue("--client", out var client))
                {
                    throw new StartupException("explain needs --client ID");
                }

                var ip = switches.GetValueOrDefault("--ip") ?? "";
                if (ip.Length > 0 && !IPAddress.TryParse(ip, out _))
                {
                    throw new StartupException($"--ip '{ip}' is not an IP address");
                }

                var args = new List<string> { client, switches.GetValueOrDefault("--require") ?? "", ip, switches.GetValueOrDefault("--kind") ?? "" };

                return (Tier2AdminCommands.Explain, args);
        }

        throw new StartupException($"unknown command '{string.Join(' ', words)}' (see vipd ctl --help)");
    }

    private static IEnumerable<string> CheckPairs(IEnumerable<string> pairs)
    {
        foreach (var p in pairs)
        {
            if (p.IndexOf('=', StringComparison.Ordinal) <= 0)
            {
                throw new StartupException($"'{p}' is not an attribute k=v");
            }

            yield return p;
        }
    }

    internal sealed record DaemonAnswer(IPEndPoint EndPoint, AdminResult? Result, string? Failure);

    internal static async Task<DaemonAnswer[]> FanOutAsync(IReadOnlyList<IPEndPoint> endPoints, string token, string command, IReadOnlyList<string> args, TimeSpan timeout)
    {
        return await Task.WhenAll(endPoints.Select(async ep =>
        {
            try
            {
                await using var client = await Tier2AdminClient.ConnectAsync(ep, token, timeout).ConfigureAwait(false);
                var result = await client.SendAsync(command, args, timeout).ConfigureAwait(false);
                return new DaemonAnswer(ep, result, null);
            }
            catch (Tier2AdminException ex) when (ex.Code == RejectCode.Unauthorized)
            {
                return new DaemonAnswer(ep, null, "refused: wrong or missing admin token (--token-file)");
            }
            catch (Exception ex) when (ex is Tier2AdminException or IOException or TimeoutException or System.Net.Sockets.SocketException or VipProtocolException)
            {
                return new DaemonAnswer(ep, null, ex.Message);
            }
        })).ConfigureAwait(false);
    }

    internal int Report(string command, DaemonAnswer[] answers, bool json)
    {
        var failed = false;
        if (json)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartArray();
                foreach (var a in answers)
                {
                    w.WriteStartObject();
                    w.WriteString("tier2", a.EndPoint.ToString());
                    if (a.Result is { } r)
                    {
                        w.WriteNumber("status", r.Status);
                        w.WritePropertyName("result");
                        using var doc = JsonDocument.Parse(r.Json);
                        doc.RootElement.WriteTo(w);
                        failed |= r.Status != 0;
                    }
                    else
                    {
                        w.WriteString("error", a.Failure);
                        failed = true;
                    }

                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            _out.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
            return failed ? ExitCodes.Failed : Disagreements(command, answers).Count > 0 ? 2 : ExitCodes.Ok;
        }

        var ok = answers.Where(a => a.Result is { Status: 0 }).ToList();
        foreach (var a in answers)
        {
            if (a.Result is null)
            {
                _err.WriteLine($"tier-2 {a.EndPoint}: no answer: {a.Failure}");
                failed = true;
            }
            else if (a.Result.Status != 0)
            {
                _err.WriteLine($"tier-2 {a.EndPoint}: {ErrorOf(a.Result)}");
                failed = true;
            }
        }

        if (ok.Count > 0)
        {
            using var doc = JsonDocument.Parse(ok[0].Result!.Json);
            Print(command, doc.RootElement, ok.Count == answers.Length ? null : ok[0].EndPoint);
        }

        var disagreements = Disagreements(command, answers);
        foreach (var line in disagreements)
        {
            _err.WriteLine(line);
        }

        return failed ? ExitCodes.Failed : disagreements.Count > 0 ? 2 : ExitCodes.Ok;
    }

    private static string ErrorOf(AdminResult result)
    {
        try
        {
            using var doc = JsonDocument.Parse(result.Json);
            return doc.RootElement.TryGetProperty("error", out var e) ? e.GetString() ?? result.Json : result.Json;
        }
        catch (JsonException)
        {
            return result.Json;
        }
    }

    private void Print(string command, JsonElement root, IPEndPoint? from)
    {
        if (from is not null)
        {
            _out.WriteLine($"(as seen by {from})");
        }

        switch (command)
        {
            case Tier2AdminCommands.ServersList:
                PrintTable(
                    ["ID", "ADDRESS", "ATTRIBUTES", "CAPACITY", "LOAD", "ACTIVE", "STATE"],
                    root.GetProperty("servers").EnumerateArray().Select(s => new[]
                    {
                        s.GetProperty("id").GetString()!,
                        s.GetProperty("address").GetString()!,
                        Attrs(s.GetProperty("attributes")),
                        s.GetProperty("capacity").GetUInt32().ToString(CultureInfo.InvariantCulture),
                        (s.GetProperty("loadPermille").GetInt32() / 10.0).ToString("0.0", CultureInfo.InvariantCulture) + "%",
                        s.GetProperty("activeTasks").GetUInt32().ToString(CultureInfo.InvariantCulture),
                        s.GetProperty("state").GetString()!,
                    }));
                break;
            case Tier2AdminCommands.ClientsList:
                PrintTable(["CLIENT", "ATTRIBUTES"], root.GetProperty("clients").EnumerateArray()
                    .Select(c => new[] { c.GetProperty("id").GetString()!, Attrs(c.GetProperty("attributes")) }));
                break;
            case Tier2AdminCommands.NetworksList:
                PrintTable(["NETWORK", "ATTRIBUTES"], root.GetProperty("networks").EnumerateArray()
                    .Select(c => new[] { c.GetProperty("cidr").GetString()!, Attrs(c.GetProperty("attributes")) }));
                break;
            case Tier2AdminCommands.ClientsGet:
                _out.WriteLine($"client {root.GetProperty("id").GetString()}: {Attrs(root.GetProperty("attributes"))}");
                break;
            case Tier2AdminCommands.Explain:
                _out.WriteLine($"client {(root.GetProperty("clientKnown").GetBoolean() ? "known" : "unknown (no record)")}, attributes {Attrs(root.GetProperty("clientAttributes"))}, " +
                    $"requirement '{(root.TryGetProperty("requirement", out var req) ? req.GetString() : "")}'");
                _out.WriteLine($"outcome: {root.GetProperty("outcome").GetString()}" +
                    (root.TryGetProperty("chosen", out var chosen) && chosen.ValueKind == JsonValueKind.String ? $", would choose {chosen.GetString()}" : "") +
                    (root.TryGetProperty("message", out var msg) ? $" ({msg.GetString()})" : ""));
                PrintTable(["SERVER", "KEPT", "RANK", "SCORE", "LOAD", "STATE", "REASON"], root.GetProperty("servers").EnumerateArray().Select(s => new[]
                {
                    s.GetProperty("id").GetString()!,
                    s.GetProperty("kept").GetBoolean() ? "yes" : "no",
                    s.GetProperty("rank").GetInt32() >= 0 ? s.GetProperty("rank").GetInt32().ToString(CultureInfo.InvariantCulture) : "-",
                    s.GetProperty("score").GetInt32().ToString(CultureInfo.InvariantCulture),
                    (s.GetProperty("load").GetDouble() * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%",
                    s.GetProperty("state").GetString()!,
                    s.GetProperty("reason").GetString() + (s.TryGetProperty("detail", out var d) ? ": " + d.GetString() : ""),
                }));
                break;
            default:
                _out.WriteLine(root.TryGetProperty("message", out var m) ? m.GetString() : root.GetRawText());
                break;
        }
    }

    private static string Attrs(JsonElement obj)
    {
        var parts = obj.EnumerateObject().Select(p => $"{p.Name}={p.Value.GetString()}").ToList();
        return parts.Count == 0 ? "-" : string.Join(',', parts);
    }

    private void PrintTable(string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = new int[header.Length];
        foreach (var r in all)
        {
            for (var i = 0; i < r.Length; i++)
            {
                widths[i] = Math.Max(widths[i], r[i].Length);
            }
        }

        foreach (var r in all)
        {
            var line = new StringBuilder();
            for (var i = 0; i < r.Length; i++)
            {
                line.Append(i == r.Length - 1 ? r[i] : r[i].PadRight(widths[i] + 2));
            }

            _out.WriteLine(line.ToString().TrimEnd());
        }

        if (all.Count == 1)
        {
            _out.WriteLine("(none)");
        }
    }

    /// <summary>
    /// What the daemons that answered disagree on, compared with the first one: the fields that must agree
    /// (ids, addresses, attributes, capacity, drained; records; kept/dropped), not the load, which each daemon
    /// sees a little differently.
    /// </summary>
    internal static List<string> Disagreements(string command, DaemonAnswer[] answers)
    {
        var lines = new List<string>();
        var ok = answers.Where(a => a.Result is not null).ToList();
        if (ok.Count < 2)
        {
            return lines;
        }

        var reference = Canonical(command, ok[0].Result!);
        foreach (var a in ok.Skip(1))
        {
            var other = Canonical(command, a.Result!);
            var missing = reference.Keys.Except(other.Keys).ToList();
            var extra = other.Keys.Except(reference.Keys).ToList();
            var differ = reference.Keys.Intersect(other.Keys).Where(k => reference[k] != other[k]).ToList();
            foreach (var k in missing)
            {
                lines.Add($"tier-2 {a.EndPoint} disagrees with {ok[0].EndPoint}: {k} missing");
            }

            foreach (var k in extra)
            {
                lines.Add($"tier-2 {a.EndPoint} disagrees with {ok[0].EndPoint}: {k} not known to {ok[0].EndPoint}");
            }

            foreach (var k in differ)
            {
                lines.Add($"tier-2 {a.EndPoint} disagrees with {ok[0].EndPoint}: {k}: {other[k]} (vs {reference[k]})");
            }
        }

        return lines;
    }

    private static Dictionary<string, string> Canonical(string command, AdminResult result)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (result.Status != 0)
        {
            map["status"] = result.Status.ToString(CultureInfo.InvariantCulture);
            return map;
        }

        using var doc = JsonDocument.Parse(result.Json);
        var root = doc.RootElement;
        switch (command)
        {
            case Tier2AdminCommands.ServersList:
                foreach (var s in root.GetProperty("servers").EnumerateArray())
                {
                    map["server " + s.GetProperty("id").GetString()] =
                        $"{s.GetProperty("address").GetString()} {Attrs(s.GetProperty("attributes"))} capacity {s.GetProperty("capacity").GetUInt32()}" +
                        (s.GetProperty("drained").GetBoolean() ? " drained" : "");
                }

                break;
            case Tier2AdminCommands.ClientsList:
                foreach (var c in root.GetProperty("clients").EnumerateArray())
                {
                    map["client " + c.GetProperty("id").GetString()] = Attrs(c.GetProperty("attributes"));
                }

                break;
            case Tier2AdminCommands.NetworksList:
                foreach (var c in root.GetProperty("networks").EnumerateArray())
                {
                    map["network " + c.GetProperty("cidr").GetString()] = Attrs(c.GetProperty("attributes"));
                }

                break;
            case Tier2AdminCommands.Explain:
                foreach (var s in root.GetProperty("servers").EnumerateArray())
                {
                    map["server " + s.GetProperty("id").GetString()] = s.GetProperty("kept").GetBoolean() ? "kept" : "dropped (" + s.GetProperty("reason").GetString() + ")";
                }

                break;
            default:
                map["result"] = root.GetRawText();
                break;
        }

        return map;
    }
}
