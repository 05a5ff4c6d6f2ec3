using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace DeepLabTorch.Config;

/// <summary>
/// The one declaration of a setting, on its property of a settings record (<see cref="TrainConfig"/>):
/// the help text, whether it is also a command-line flag, and the checks on its value alone. The rest
/// follows from the property: the flag is its name in kebab-case (--out-stride), the JSON key in
/// snake_case (out_stride), the default its initialiser, the kind of value its type. The CLI's flags
/// and --help, the --config reader and the run folder's config.json are all built from these.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class SettingAttribute(string help) : Attribute
{
    /// <summary>Stands for the backbone names of ModelCatalog in <see cref="Choices"/>.</summary>
    public const string BackboneNames = "{backbones}";

    public string Help { get; } = help;

    /// <summary>False for the settings only a config file gives (the fine print of a recipe).</summary>
    public bool Flag { get; set; } = true;

    /// <summary>The default in words, where the initialiser is null because other settings decide it.</summary>
    public string? Default { get; set; }

    /// <summary>The allowed values, "a|b|c" (or <see cref="BackboneNames"/>).</summary>
    public string? Choices { get; set; }

    /// <summary>Inclusive lower bound (NaN: none).</summary>
    public double Min { get; set; } = double.NaN;

    /// <summary>Exclusive lower bound (NaN: none).</summary>
    public double Above { get; set; } = double.NaN;

    /// <summary>Inclusive upper bound (NaN: none).</summary>
    public double Max { get; set; } = double.NaN;

    /// <summary>Exclusive upper bound (NaN: none).</summary>
    public double Below { get; set; } = double.NaN;
}

/// <summary>One setting of a settings record: its property, its declaration and the names derived from them.</summary>
internal sealed record Setting(PropertyInfo Property, SettingAttribute Declaration, object? DefaultValue)
{
    /// <summary>The flag's long name, without dashes: "out-stride".</summary>
    public string Flag => JsonNamingPolicy.KebabCaseLower.ConvertName(Property.Name);

    /// <summary>The JSON key, or null for a setting that is never written to a config (a command-line choice).</summary>
    public string? Key => Property.GetCustomAttribute<JsonIgnoreAttribute>() is null ? JsonNamingPolicy.SnakeCaseLower.ConvertName(Property.Name) : null;

    public bool IsFlag => Declaration.Flag;

    /// <summary>The property's type without Nullable.</summary>
    public Type ValueType => Nullable.GetUnderlyingType(Property.PropertyType) ?? Property.PropertyType;

    /// <summary>A switch on the command line: given alone it means true, "--x false" turns off a true from a file.</summary>
    public bool IsSwitch => ValueType == typeof(bool);

    public IReadOnlyList<string> Choices => Declaration.Choices switch
    {
        null => Array.Empty<string>(),
        SettingAttribute.BackboneNames => Models.ModelCatalog.AllNames,
        var c => c.Split('|'),
    };

    /// <summary>The help text as --help shows it: the declaration's words, the choices and the default.</summary>
    public string HelpText
    {
        get
        {
            var text = Declaration.Help;
            if (Declaration.Choices == SettingAttribute.BackboneNames) text += " " + Models.ModelCatalog.Describe() + ".";
            else if (Choices.Count > 0) text += " One of " + string.Join(", ", Choices) + ".";
            var shown = Declaration.Default ?? DefaultText();
            return shown is null ? text : $"{text} (default: {shown})";
        }
    }

    private string? DefaultText() => DefaultValue switch
    {
        null or false => null,
        true => "on",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        var v => v.ToString(),
    };

    /// <summary>Checks the value against the declaration's choices and bounds; throws UserException naming the flag.</summary>
    public void Check(object? value)
    {
        if (value is null) return;
        var d = Declaration;
        var name = IsFlag ? "--" + Flag : $"config key '{Key}'";
        if (Choices.Count > 0)
        {
            var text = value is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : value.ToString();
            if (!Choices.Contains(text)) throw new UserException($"{name} must be one of {string.Join(", ", Choices)}, got '{text}'");
        }
        if (value is not (int or long or double)) return;
        var x = Convert.ToDouble(value, CultureInfo.InvariantCulture);
        var bounded = !double.IsNaN(d.Min) || !double.IsNaN(d.Above) || !double.IsNaN(d.Max) || !double.IsNaN(d.Below);
        if (!bounded) return;
        var ok = double.IsFinite(x)
            && (double.IsNaN(d.Min) || x >= d.Min) && (double.IsNaN(d.Above) || x > d.Above)
            && (double.IsNaN(d.Max) || x <= d.Max) && (double.IsNaN(d.Below) || x < d.Below);
        if (!ok) throw new UserException($"{name} must be {Range()}, got {Convert.ToString(value, CultureInfo.InvariantCulture)}");
    }

    /// <summary>"&gt;= 1", "above 0", "in [0, 1)", "in [2, 255]".</summary>
    private string Range()
    {
        var d = Declaration;
        static string N(double v) => v.ToString(CultureInfo.InvariantCulture);
        var low = !double.IsNaN(d.Min) ? ("[", d.Min) : !double.IsNaN(d.Above) ? ("(", d.Above) : (null, double.NaN);
        var high = !double.IsNaN(d.Max) ? ("]", d.Max) : !double.IsNaN(d.Below) ? (")", d.Below) : (null, double.NaN);
        if (low.Item1 is not null && high.Item1 is not null) return $"in {low.Item1}{N(low.Item2)}, {N(high.Item2)}{high.Item1}";
        if (low.Item1 is not null) return low.Item1 == "[" ? $">= {N(low.Item2)}" : $"above {N(low.Item2)}";
        return high.Item1 == "]" ? $"<= {N(high.Item2)}" : $"below {N(high.Item2)}";
    }
}

/// <summary>The settings of a settings record, in declaration order.</summary>
internal static class Settings
{
    /// <summary>Every public settable property of T with its [Setting] declaration. One without is an error: nothing is settable by accident.</summary>
    public static IReadOnlyList<Setting> Of<T>() where T : new() => Cache<T>.All;

    /// <summary>Checks every setting's value against its declaration (choices and bounds).</summary>
    public static void Check<T>(T value) where T : new()
    {
        foreach (var s in Of<T>()) s.Check(s.Property.GetValue(value));
    }

    private static class Cache<T> where T : new()
    {
        public static readonly IReadOnlyList<Setting> All = Build();

        private static Setting[] Build()
        {
            var defaults = new T();
            return typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.CanWrite)
                .OrderBy(p => p.MetadataToken)
                .Select(p => new Setting(p,
                    p.GetCustomAttribute<SettingAttribute>() ?? throw new InvalidOperationException($"{typeof(T).Name}.{p.Name} has no [Setting] declaration"),
                    p.GetValue(defaults)))
                .ToArray();
        }
    }
}
