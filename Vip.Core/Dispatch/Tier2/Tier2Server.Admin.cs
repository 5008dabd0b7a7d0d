using System.Buffers;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Vip.Protocol;
using Vip.Selection;
using Vip.Store;
using SelectionState = Vip.Selection.ServerState;
using StoreState = Vip.Store.ServerState;

namespace Vip.Dispatch.Tier2;

public sealed partial class Tier2Server
{
    private static readonly TimeSpan DurableWait = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _adminGate = new(1, 1);

    private async Task OnAdminAsync(ControlLink link, ulong requestId, byte[] payload)
    {
        await Task.Yield();
        AdminRequest request;
        try
        {
            request = AdminRequest.Read(payload);
        }
        catch (VipProtocolException ex)
        {
            WriteOn(link, static (w, s) => Tier2Frames.WriteReject(w, s.requestId, s.Item2, 0, s.Message), (requestId, ex.RejectCode, ex.Message));
            await link.FlushAsync(Time).ConfigureAwait(false);
            return;
        }

        if (_adminToken.Length == 0 || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(request.Token), _adminToken))
        {
            var reason = _adminToken.Length == 0 ? "no admin token is configured on this tier-2 daemon" : "wrong or missing admin token";
            Tier2Log.AdminRefused(Log, link.RemoteEndPoint.ToString(), reason);
            WriteOn(link, static (w, s) => Tier2Frames.WriteReject(w, s.requestId, RejectCode.Unauthorized, 0, s.reason), (requestId, reason));
            await link.FlushAsync(Time).ConfigureAwait(false);
            return;
        }

        (ushort Status, string Json) answer;
        await _adminGate.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            answer = await ExecuteAdminAsync(request.Command, request.Args).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or VipStoreException)
        {
            answer = (Tier2AdminCommands.StatusBadRequest, ErrorJson(ex.Message));
        }
        finally
        {
            _adminGate.Release();
        }

        Tier2Log.AdminDone(Log, request.Command, link.RemoteEndPoint.ToString(), answer.Status);
        WriteOn(link, static (w, s) => FrameWriter.Write(w, s.requestId, s.Item2), (requestId, new AdminResult(answer.Status, answer.Json)));
        await link.FlushAsync(Time).ConfigureAwait(false);
    }

    /// <summary>Runs one admin command; returns the ADMIN-RESULT status and JSON. Serialised by the caller.</summary>
    internal async Task<(ushort Status, string Json)> ExecuteAdminAsync(string command, IReadOnlyList<string> args)
    {
        var store = _store ?? throw new InvalidOperationException("the tier-2 daemon is not started");
        switch (command)
        {
            case Tier2AdminCommands.ServersList:
                Arity(args, 0, 0, command);
                return Ok(ServersJson);

            case Tier2AdminCommands.ServersDrain:
            case Tier2AdminCommands.ServersUndrain:
            {
                Arity(args, 1, 1, command);
                var drain = command == Tier2AdminCommands.ServersDrain;
                var id = args[0];
                var write = store.SetServerDrainedAsync(id, drain);
                if (write.IsCompleted && !write.Result)
                {
                    return NotFound($"no app server '{id}'");
                }

                ApplyDrain(id, drain);
                var durable = await DurableAsync(write).ConfigureAwait(false);
                return Ok(w =>
                {
                    w.WriteString("id", id);
                    w.WriteBoolean("drained", drain);
                    w.WriteBoolean("durable", durable);
                    w.WriteString("message", $"server {id} {(drain ? "drained: no new tasks are sent to it" : "undrained: it is selected again")}{Durability(durable)}");
                });
            }

            case Tier2AdminCommands.ServersRemove:
            {
                Arity(args, 1, 1, command);
                var id = args[0];
                if (_linked.ContainsKey(id))
                {
                    return Bad($"server '{id}' is connected; it leaves by itself when it deregisters or disconnects");
                }

                var write = store.DeregisterServerAsync(id);
                if (write.IsCompleted && !write.Result)
                {
                    return NotFound($"no app server '{id}'");
                }

                _engine.Deregister(id);
                _engine.Publish();
                var durable = await DurableAsync(write).ConfigureAwait(false);
                return Ok(w =>
                {
                    w.WriteString("id", id);
                    w.WriteBoolean("durable", durable);
                    w.WriteString("message", $"server {id} removed{Durability(durable)}");
                });
            }

            case Tier2AdminCommands.ClientsSet:
            {
                Arity(args, 1, 1 + ProtocolLimits.MaxAttributes, command);
                var id = args[0];
                var attributes = ParsePairs(args.Skip(1));
                var write = store.SetClientAsync(id, attributes);
                _engine.SetClient(new Selection.ClientRecord(id, attributes));
                _engine.Publish();
                var durable = await DurableAsync(write).ConfigureAwait(false);
                return Ok(w =>
                {
                    w.WriteString("id", id);
                    WriteAttributes(w, "attributes", attributes);
                    w.WriteBoolean("durable", durable);
                    w.WriteString("message", $"client {id} set{Durability(durable)}");
                });
            }

            case Tier2AdminCommands.ClientsGet:
            {
                Arity(args, 1, 1, command);
                if (!store.Snapshot.Clients.TryGetValue(args[0], out var client))
                {
                    return NotFound($"no client '{args[0]}'");
                }

                return Ok(w =>
                {
                    w.WriteString("id", client.Id);
                    WriteAttributes(w, "attributes", client.Attributes);
                    w.WriteString("updatedAt", client.UpdatedAt.ToString("O", CultureInfo.InvariantCulture));
                });
            }

            case Tier2AdminCommands.ClientsRemove:
            {
                Arity(args, 1, 1, command);
                var id = args[0];
                var write = store.RemoveClientAsync(id);
                if (write.IsCompleted && !write.Result)
                {
                    return NotFound($"no client '{id}'");
                }

                _engine.RemoveClient(id);
                _engine.Publish();
                var durable = await DurableAsync(write).ConfigureAwait(false);
                return Ok(w =>
                {
                    w.WriteString("id", id);
                    w.WriteBoolean("durable", durable);
                    w.WriteString("message", $"client {id} removed{Durability(durable)}");
                });
            }

            case Tier2AdminCommands.ClientsList:
                Arity(args, 0, 0, command);
                return Ok(w =>
                {
                    w.WriteStartArray("clients");
                    foreach (var c in store.Snapshot.Clients.Values.OrderBy(c => c.Id, StringComparer.Ordinal))
                    {
                        w.WriteStartObject();
                        w.WriteString("id", c.Id);
                        WriteAttributes(w, "attributes", c.Attributes);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                });

            case Tier2AdminCommands.NetworksSet:
            {
                Arity(args, 1, 1 + ProtocolLimits.MaxAttributes, command);
                var network = ParseNetwork(args[0]);
                var attributes = ParsePairs(args.Skip(1));
                var write = store.SetNetworkRuleAsync(network, attributes);
                SyncNetworkRules(store);
                var durable = await DurableAsync(write).ConfigureAwait(false);
                return Ok(w =>
                {
                    w.WriteString("cidr", network.ToString());
                    WriteAttributes(w, "attributes", attributes);
                    w.WriteBoolean("durable", durable);
                    w.WriteString("message", $"network {network} set{Durability(durable)}");
                });
            }

            case Tier2AdminCommands.NetworksRemove:
            {
                Arity(args, 1, 1, command);
                var network = ParseNetwork(args[0]);
                var write = store.RemoveNetworkRuleAsync(network);
                if (write.IsCompleted && !write.Result)
                {
                    return NotFound($"no network rule for {network}");
                }

                SyncNetworkRules(store);
                var durable = await DurableAsync(write).ConfigureAwait(false);
                return Ok(w =>
                {
                    w.WriteString("cidr", network.ToString());
                    w.WriteBoolean("durable", durable);
                    w.WriteString("message", $"network {network} removed{Durability(durable)}");
                });
            }

            case Tier2AdminCommands.NetworksList:
                Arity(args, 0, 0, command);
                return Ok(w =>
                {
                    w.WriteStartArray("networks");
                    foreach (var n in store.Snapshot.Networks.Values.OrderBy(n => n.Network.ToString(), StringComparer.Ordinal))
                    {
                        w.WriteStartObject();
                        w.WriteString("cidr", n.Network.ToString());
                        WriteAttributes(w, "attributes", n.Attributes);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                });

            case Tier2AdminCommands.Explain:
            {
                Arity(args, 1, 4, command);
                IPAddress? ip = null;
                if (args.Count > 2 && args[2].Length > 0 && !IPAddress.TryParse(args[2], out ip))
                {
                    return Bad($"'{args[2]}' is not an IP address");
                }

                var explanation = _engine.Explain(SelectionRequest.Create(args[0], ip, args.Count > 3 ? args[3] : "", null, args.Count > 1 ? args[1] : ""));
                var buffer = new ArrayBufferWriter<byte>();
                using (var writer = new Utf8JsonWriter(buffer))
                {
                    explanation.WriteJson(writer);
                }

                return (Tier2AdminCommands.StatusOk, Encoding.UTF8.GetString(buffer.WrittenSpan));
            }

            default:
                return Bad($"unknown command '{command}'");
        }
    }

    private void ServersJson(Utf8JsonWriter w)
    {
        var now = Time.GetUtcNow();
        var expireAfter = _engine.Options.ExpireAfter;
        var records = _store!.Snapshot.Servers;
        w.WriteString("tier2", _options.Id);
        w.WriteStartArray("servers");
        foreach (var s in _engine.Servers.OrderBy(s => s.Id, StringComparer.Ordinal))
        {
            var drained = records.TryGetValue(s.Id, out var record) && record.Record.AdminDrained;
            var expired = s.LastHeard is { } heard && now - heard > expireAfter;
            var state = s.State switch
            {
                SelectionState.Unknown => "not-heard-from",
                _ when expired => "expired",
                _ when drained => "drained",
                SelectionState.Draining => "draining",
                _ => "up",
            };
            w.WriteStartObject();
            w.WriteString("id", s.Id);
            w.WriteString("address", s.Service.ToString());
            WriteAttributes(w, "attributes", s.Attributes);
            w.WriteNumber("capacity", s.Capacity);
            w.WriteString("state", state);
            w.WriteNumber("loadPermille", s.LoadPermille);
            w.WriteNumber("activeTasks", s.ActiveTasks);
            w.WriteNumber("issuedSinceHeartbeat", s.IssuedSinceHeartbeat);
            if (s.LastHeard is { } last)
            {
                w.WriteString("lastHeard", last.ToString("O", CultureInfo.InvariantCulture));
            }
            else
            {
                w.WriteNull("lastHeard");
            }

            w.WriteBoolean("connected", _linked.ContainsKey(s.Id));
            w.WriteBoolean("drained", drained);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    // An operator drain takes effect at once; an undrain as soon as the server's own state allows it.
    private void ApplyDrain(string id, bool drain)
    {
        if (!_engine.Servers.TryGetServer(id, out var entry) || entry.State == SelectionState.Unknown)
        {
            return;
        }

        if (entry.LastHeard is { } heard && Time.GetUtcNow() - heard > _engine.Options.ExpireAfter)
        {
            return; // expired: its next heartbeat applies the flag
        }

        var reportedDraining = _store!.Snapshot.Servers.TryGetValue(id, out var record) && record.Record.State == StoreState.Draining;
        _engine.Heartbeat(id, new ServerHeartbeat(entry.LoadPermille, entry.ActiveTasks, drain || reportedDraining));
    }

    private void SyncNetworkRules(VipStore store)
    {
        _engine.SetNetworkRules(store.Snapshot.Networks.Values.Select(n => new Selection.NetworkRule(n.Network, n.Attributes)));
        _engine.Publish();
    }

    private async Task<bool> DurableAsync(Task write)
    {
        var done = await Task.WhenAny(write, Task.Delay(DurableWait, Time)).ConfigureAwait(false);
        if (done != write)
        {
            _ = WatchStoreWrite(write, "an admin change");
            return false;
        }

        await write.ConfigureAwait(false);
        return true;
    }

    private static string Durability(bool durable) => durable ? "" : " (in memory; the store is still writing it to disk)";

    private static void Arity(IReadOnlyList<string> args, int min, int max, string command)
    {
        if (args.Count < min || args.Count > max)
        {
            throw new ArgumentException(min == max
                ? $"{command} takes {min} argument(s), not {args.Count}"
                : $"{command} takes {min} to {max} arguments, not {args.Count}");
        }
    }

    private static Dictionary<string, string> ParsePairs(IEnumerable<string> pairs)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in pairs)
        {
            var eq = p.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"'{p}' is not an attribute k=v");
            }

            if (!result.TryAdd(p[..eq], p[(eq + 1)..]))
            {
                throw new ArgumentException($"attribute '{p[..eq]}' is given twice");
            }
        }

        return result;
    }

    private static IPNetwork ParseNetwork(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (!IPNetwork.TryParse(text, out var network) || slash < 0 || !IPAddress.TryParse(text.AsSpan(0, slash), out var address) || !address.Equals(network.BaseAddress))
        {
            throw new ArgumentException($"'{text}' is not a network in CIDR notation with no host bits set (for example 10.1.0.0/16)");
        }

        return network;
    }

    private static void WriteAttributes(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, string> attributes)
    {
        w.WriteStartObject(name);
        foreach (var (k, v) in attributes.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            w.WriteString(k, v);
        }

        w.WriteEndObject();
    }

    private static (ushort, string) Ok(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return (Tier2AdminCommands.StatusOk, Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    private static (ushort, string) Bad(string message) => (Tier2AdminCommands.StatusBadRequest, ErrorJson(message));

    private static (ushort, string) NotFound(string message) => (Tier2AdminCommands.StatusNotFound, ErrorJson(message));

    private static string ErrorJson(string message)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("error", message);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
