using System.Reflection;
using System.Reflection.Emit;
using CommandLine;
using DeepLabTorch.Config;

namespace DeepLabTorch.Cli.Verbs;

/// <summary>
/// Command-line flags made from a settings record's declarations, so a setting is declared once (on
/// its property, see <see cref="SettingAttribute"/>) and is a flag, a config key and a line of --help
/// without being written again. CommandLineParser reads options from properties that carry [Option];
/// this builds, at run time, a subclass of the verb with one such property per flag setting: a nullable
/// value (absent = not given, so a config file or a checkpoint's record keeps its value) or a switch.
/// </summary>
internal static class SettingFlags
{
    /// <summary>A subclass of TVerb with the verb's [Verb] attribute and a flag property per setting of TSettings.</summary>
    public static Type Build<TVerb, TSettings>(string verbName, string helpText) where TVerb : VerbBase where TSettings : new()
    {
        var assembly = AssemblyBuilder.DefineDynamicAssembly(new AssemblyName($"DeepLabTorch.Cli.{typeof(TVerb).Name}Flags"), AssemblyBuilderAccess.Run);
        var module = assembly.DefineDynamicModule("Flags");
        var type = module.DefineType($"{typeof(TVerb).Namespace}.{typeof(TVerb).Name}Flags", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class, typeof(TVerb));
        type.DefineDefaultConstructor(MethodAttributes.Public);
        var verbCtor = typeof(VerbAttribute).GetConstructor(new[] { typeof(string), typeof(bool), typeof(string[]) })!;
        type.SetCustomAttribute(new CustomAttributeBuilder(verbCtor, new object?[] { verbName, false, null },
            new[] { typeof(VerbAttribute).GetProperty(nameof(VerbAttribute.HelpText))! }, new object[] { helpText }));
        var optionCtor = typeof(OptionAttribute).GetConstructor(new[] { typeof(string) })!;
        var helpProperty = typeof(OptionAttribute).GetProperty(nameof(OptionAttribute.HelpText))!;
        foreach (var s in Settings.Of<TSettings>().Where(s => s.IsFlag))
        {
            var flagType = FlagType(s);
            var field = type.DefineField("_" + s.Property.Name, flagType, FieldAttributes.Private);
            var property = type.DefineProperty(s.Property.Name, PropertyAttributes.None, flagType, null);
            const MethodAttributes accessor = MethodAttributes.Public | MethodAttributes.SpecialName | MethodAttributes.HideBySig;
            var get = type.DefineMethod("get_" + s.Property.Name, accessor, flagType, Type.EmptyTypes);
            var il = get.GetILGenerator();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, field);
            il.Emit(OpCodes.Ret);
            var set = type.DefineMethod("set_" + s.Property.Name, accessor, null, new[] { flagType });
            il = set.GetILGenerator();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Stfld, field);
            il.Emit(OpCodes.Ret);
            property.SetGetMethod(get);
            property.SetSetMethod(set);
            property.SetCustomAttribute(new CustomAttributeBuilder(optionCtor, new object[] { s.Flag }, new[] { helpProperty }, new object[] { s.HelpText }));
        }
        return type.CreateType();
    }

    /// <summary>bool for a switch; the value type made nullable (not given = null); a reference type as it is.</summary>
    public static Type FlagType(Setting s) =>
        s.IsSwitch ? typeof(bool) : s.ValueType.IsValueType ? typeof(Nullable<>).MakeGenericType(s.ValueType) : s.ValueType;

    /// <summary>
    /// The settings over a base (defaults, a config file or a checkpoint's record) with the flags given:
    /// a value flag replaces the base's when given; a switch turns on when given, off when given as false
    /// (switchedOff), and keeps the base's otherwise.
    /// </summary>
    public static TSettings Apply<TSettings>(object flags, TSettings baseSettings, IReadOnlySet<string> switchedOff) where TSettings : class, new()
    {
        // A copy to set through reflection (init-only setters are ordinary setters to it), so the base stays as it was.
        var result = Clone(baseSettings);
        foreach (var s in Settings.Of<TSettings>().Where(s => s.IsFlag))
        {
            var given = Given(flags, s);
            if (s.IsSwitch)
            {
                if ((bool)given!) s.Property.SetValue(result, true);
                else if (switchedOff.Contains(s.Flag)) s.Property.SetValue(result, false);
            }
            else if (given is not null) s.Property.SetValue(result, given);
        }
        return result;
    }

    /// <summary>The value of a setting's flag on a parsed flags object (null or false: not given).</summary>
    public static object? Given(object flags, Setting s) =>
        (flags.GetType().GetProperty(s.Property.Name) ?? throw new InvalidOperationException($"{flags.GetType().Name} has no flag for {s.Property.Name}")).GetValue(flags);

    private static T Clone<T>(T value) where T : class
    {
        var clone = typeof(T).GetMethod("<Clone>$") ?? throw new InvalidOperationException($"{typeof(T).Name} is not a record");
        return (T)clone.Invoke(value, null)!;
    }
}
