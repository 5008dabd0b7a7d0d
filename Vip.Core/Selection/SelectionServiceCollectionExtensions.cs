using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Vip.Selection;

/// <summary>Registers the selection engine with dependency injection.</summary>
public static class SelectionServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="SelectionEngine"/> as a singleton, with <see cref="SelectionOptions"/> validated at start
    /// (bind them with <c>services.AddOptions&lt;SelectionOptions&gt;().BindConfiguration(SelectionOptions.SectionName)</c>).
    /// Uses the registered <see cref="TimeProvider"/>, or the system clock.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Optional code configuration, applied after configuration binding.</param>
    /// <returns>The service collection.</returns>
    public static IServiceCollection AddVipSelection(this IServiceCollection services, Action<SelectionOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        OptionsBuilder<SelectionOptions> options = services.AddOptions<SelectionOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SelectionOptions>, SelectionOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new SelectionEngine(
            sp.GetRequiredService<IOptions<SelectionOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            random: null,
            sp.GetService<ILogger<SelectionEngine>>()));
        return services;
    }
}
