using System.Globalization;
using Vip.Daemons.Hosting;
using Vip.Tickets;

namespace Vip.Daemons.Roles;

/// <summary><c>vipd keygen</c>: writes a ticket key file (mode 0600), or adds, activates or removes a key in one.</summary>
internal sealed class KeygenRole : IRole
{
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--out"] = "Keygen:Out",
        ["--force"] = "Keygen:Force",
        ["--add"] = "Keygen:Add",
        ["--activate"] = "Keygen:Activate",
        ["--remove"] = "Keygen:Remove",
    };

    public string Name => "keygen";

    public string Summary => "write a ticket key file (owner-only), or rotate the keys in one";

    public string Usage => """
        usage: vipd keygen --out PATH [--force]
               vipd keygen --out PATH --add [--activate]
               vipd keygen --out PATH --activate ID
               vipd keygen --out PATH --remove ID

        Writes the HMAC-SHA256 keys that tier-2 daemons sign tickets with and app servers verify them with. The same
        file goes to every tier-2 daemon and every app server. Files are written atomically with mode 0600.

          --out PATH      the key file
          --force         replace an existing file with a new one holding one fresh key (id 1)
          --add           add a fresh key (id = highest + 1); it verifies at once but signs only once activated
          --activate [ID] make key ID the signing key; with --add and no ID, the added key
          --remove ID     remove key ID (not the active one)

        Rotation: --add, copy the file everywhere; --activate NEW, copy everywhere; after the ticket lifetime,
        --remove OLD, copy everywhere. Verifiers accept every key in the file throughout.
        """;

    public Task<int> RunAsync(string[] args)
    {
        var config = SwitchParser.Parse(args, Switches, []);
        if (!config.TryGetValue("Keygen:Out", out var path) || string.IsNullOrEmpty(path) || path == "true")
        {
            throw new StartupException("--out PATH is required (the key file to write)");
        }

        var add = IsSet(config, "Keygen:Add");
        var force = IsSet(config, "Keygen:Force");
        config.TryGetValue("Keygen:Activate", out var activate);
        config.TryGetValue("Keygen:Remove", out var remove);
        try
        {
            if (!add && activate is null && remove is null)
            {
                var ring = TicketKeyRing.CreateNew();
                TicketKeyFile.Save(path, ring, overwrite: force);
                Console.Out.WriteLine($"wrote {path}: {Describe(ring)}");
                return Task.FromResult(ExitCodes.Ok);
            }

            if (force)
            {
                throw new StartupException("--force only goes with creating a new file, not with --add, --activate or --remove");
            }

            var keys = TicketKeyFile.Load(path);
            if (add)
            {
                var activateNew = activate is "true";
                if (activate is not null && !activateNew)
                {
                    throw new StartupException("with --add, --activate takes no id (it activates the added key)");
                }

                keys = keys.WithNewKey(activateNew);
            }
            else if (activate is not null)
            {
                keys = keys.WithActive(ParseId(activate, "--activate"));
            }

            if (remove is not null)
            {
                keys = keys.Without(ParseId(remove, "--remove"));
            }

            TicketKeyFile.Save(path, keys, overwrite: true);
            Console.Out.WriteLine($"wrote {path}: {Describe(keys)}");
            return Task.FromResult(ExitCodes.Ok);
        }
        catch (TicketKeyFileException ex)
        {
            throw new StartupException(ex.Message, ex);
        }
        catch (ArgumentException ex)
        {
            throw new StartupException($"{path}: {FirstLine(ex.Message)}", ex);
        }
    }

    private static bool IsSet(Dictionary<string, string?> config, string key) =>
        config.TryGetValue(key, out var v) && bool.TryParse(v, out var b) && b;

    private static uint ParseId(string value, string name) =>
        uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id != 0
            ? id
            : throw new StartupException($"{name} needs a key id (a positive integer), not '{value}'");

    private static string Describe(TicketKeyRing ring) =>
        $"keys {string.Join(',', ring.Keys.Select(k => k.Id))} (active {ring.Active.Id})";

    // ArgumentException appends " (Parameter 'x')"; keep the sentence.
    private static string FirstLine(string message)
    {
        var i = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }
}
