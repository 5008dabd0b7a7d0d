using System.ComponentModel;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace Vip.Daemons.Hosting;

/// <summary>
/// Lets configuration binding read every TimeSpan key as <c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>2h</c> as well as
/// <c>00:00:30</c>, so all roles and sections take the same duration forms (the binder asks TypeDescriptor).
/// Installed once, when vipd's assembly loads, so no path that reads configuration can run before it.
/// </summary>
internal sealed class DurationConverter : TimeSpanConverter
{
    [ModuleInitializer]
    internal static void Register()
        => TypeDescriptor.AddAttributes(typeof(TimeSpan), new TypeConverterAttribute(typeof(DurationConverter)));

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value)
        => value is string text && ConfigParse.TryParseDuration(text.Trim(), out var duration) ? duration : base.ConvertFrom(context, culture, value);
}
