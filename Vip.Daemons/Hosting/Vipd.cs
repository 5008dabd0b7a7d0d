using Vip.Daemons.Roles;

namespace Vip.Daemons.Hosting;

/// <summary>Entry point: picks the role named by the first argument and runs it.</summary>
internal static class Vipd
{
    /// <summary>Every role of vipd. Add a role here and nowhere else.</summary>
    internal static IReadOnlyList<IRole> Roles { get; } =
    [
        new HelpRole(),
        new VipRole(),
        new KeygenRole(),
        new Tier1Role(),
        new Tier2Role(),
        new AppRole(),
        new SubmitRole(),
        new DemoRole(),
        new CtlRole(),
    ];

    /// <summary>Roles that run but are not listed by <c>vipd --help</c> (test tooling).</summary>
    internal static IReadOnlyList<IRole> HiddenRoles { get; } =
    [
        new StoreTortureRole(),
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            PrintUsage(Console.Out);
            return args.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
        }

        var role = Roles.Concat(HiddenRoles).FirstOrDefault(r => string.Equals(r.Name, args[0], StringComparison.Ordinal));
        if (role is null)
        {
            await Console.Error.WriteLineAsync($"vipd: unknown role '{args[0]}'. Run 'vipd --help' for the list.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var rest = args[1..];
        if (rest.Any(a => a is "-h" or "--help"))
        {
            Console.Out.WriteLine(role.Usage);
            return ExitCodes.Ok;
        }

        try
        {
            return await role.RunAsync(rest).ConfigureAwait(false);
        }
        catch (Exception ex) when (StartupErrors.TryDescribe(ex, out var line))
        {
            // Bad configuration or environment: one clear line, no stack trace.
            await Console.Error.WriteLineAsync($"vipd {role.Name}: {line}").ConfigureAwait(false);
            return ExitCodes.Config;
        }
        catch (Exception ex)
        {
            // A bug: say so on the first line, keep the stack for the report.
            await Console.Error.WriteLineAsync($"vipd {role.Name}: failed: {StartupErrors.OneLine(ex.Message)}{Environment.NewLine}{ex}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
    }

    internal static void PrintUsage(TextWriter w)
    {
        w.WriteLine("vipd — dispatch computing tasks through a virtual IP and two tiers of distributors.");
        w.WriteLine();
        w.WriteLine("usage: vipd ROLE [switches]     (vipd ROLE --help for the switches of a role)");
        w.WriteLine();
        foreach (var r in Roles)
        {
            w.WriteLine($"  {r.Name,-8} {r.Summary}");
        }
    }
}

/// <summary>Process exit codes used by every role.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 64;   // EX_USAGE
    public const int Config = 78;  // EX_CONFIG
}

/// <summary>Start-up failed because of configuration or environment; the message is shown as one line.</summary>
internal sealed class StartupException(string message, Exception? inner = null) : Exception(message, inner);
