namespace Vip.Daemons.Hosting;

/// <summary>One role of the <c>vipd</c> executable (<c>vipd ROLE [switches]</c>).</summary>
internal interface IRole
{
    /// <summary>The word after <c>vipd</c> that selects this role.</summary>
    string Name { get; }

    /// <summary>One line for <c>vipd --help</c>.</summary>
    string Summary { get; }

    /// <summary>The full text printed by <c>vipd ROLE --help</c>.</summary>
    string Usage { get; }

    /// <summary>Runs the role until it finishes or is stopped; returns the process exit code.</summary>
    Task<int> RunAsync(string[] args);
}
