using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Vip.Forwarding;

/// <summary>Registers the VIP box with dependency injection.</summary>
public static class ForwardingServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="VipForwarder"/> (singleton) and the validation of <see cref="ForwarderOptions"/> at start.
    /// Bind the options yourself (for example from the <c>Vip</c> configuration section); start and stop the
    /// forwarder from a hosted service.
    /// </summary>
    public static IServiceCollection AddVipForwarder(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<ForwarderOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ForwarderOptions>, ForwarderOptionsValidator>());
        services.TryAddSingleton(sp => new VipForwarder(
            sp.GetRequiredService<IOptionsMonitor<ForwarderOptions>>(),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>(),
            sp.GetService<TimeProvider>()));
        return services;
    }
}
