namespace Vip.Daemons.Hosting;

/// <summary>Turns <c>--switch value</c> pairs into configuration keys, with repeatable switches as indexed keys.</summary>
internal static class SwitchParser
{
    public static Dictionary<string, string?> Parse(
        string[] args, IReadOnlyDictionary<string, string> mappings, IReadOnlyCollection<string> repeatable)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith('-'))
            {
                throw new StartupException($"unexpected argument '{arg}' (switches take the form --name value)");
            }

            string name;
            string? value;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else
            {
                name = arg;
                value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
            }

            string key;
            if (mappings.TryGetValue(name, out var mapped))
            {
                key = mapped;
            }
            else if (name.StartsWith("--", StringComparison.Ordinal) && name.Contains(':', StringComparison.Ordinal))
            {
                key = name[2..]; // a full configuration key, e.g. --Vip:IdleTimeout 00:05:00
            }
            else
            {
                throw new StartupException($"unknown switch '{name}' (see --help)");
            }

            if (repeatable.Contains(name))
            {
                counts.TryGetValue(key, out var n);
                counts[key] = n + 1;
                result[$"{key}:{n}"] = value;
            }
            else
            {
                result[key] = value;
            }
        }

        return result;
    }
}
