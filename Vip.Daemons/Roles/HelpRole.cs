using Vip.Daemons.Hosting;

namespace Vip.Daemons.Roles;

/// <summary><c>vipd help</c>: prints the list of roles.</summary>
internal sealed class HelpRole : IRole
{
    public string Name => "help";
    public string Summary => "print this list";
    public string Usage => "usage: vipd help";

    public Task<int> RunAsync(string[] args)
    {
        Vipd.PrintUsage(Console.Out);
        return Task.FromResult(ExitCodes.Ok);
    }
}
