using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Vip.Daemons.Hosting;

/// <summary>Registers a role's options so that bad values stop start-up with one line (see <see cref="StartupErrors"/>).</summary>
internal static class ValidatedOptions
{
    /// <summary>
    /// Binds <typeparamref name="TOptions"/> to <paramref name="section"/>, strictly (an unknown key in the section
    /// is an error, so a typo does not silently fall back to a default), validates its data annotations, and
    /// validates at start, before any listener opens. Chain <c>.Validate(...)</c> for cross-field rules, or
    /// register an <c>[OptionsValidator]</c> source-generated validator.
    /// </summary>
    public static OptionsBuilder<TOptions> AddValidatedOptions<TOptions>(this IServiceCollection services, IConfiguration configuration, string section)
        where TOptions : class
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddOptionsWithValidateOnStart<TOptions>()
            .Bind(configuration.GetSection(section), o => o.ErrorOnUnknownConfiguration = true)
            .ValidateDataAnnotations();
    }
}
