using System.Runtime.CompilerServices;
using DeepLabTorch.Runtime;
using DeepLabTorch.Tests.Cli;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.TestSupport;

/// <summary>
/// The test process runs models without the CLI, so it applies the CPU-kernel guard itself, as `deeplab`
/// does: its check children are the built CLI, and the verdict is cached like a user's.
/// </summary>
internal static class KernelGuardSetup
{
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init()
    {
        KernelGuard.Probe = new ChildProcessProbe("dotnet", [CliRunner.Dll, KernelGuard.ChildArgument]);
        try
        {
            var verdict = KernelGuard.Ensure(get_num_threads());
            if (verdict.Configuration != KernelConfiguration.Default)
                Console.Error.WriteLine($"tests: CPU kernels {verdict.Describe()}");
        }
        catch (UserException e)
        {
            Console.Error.WriteLine($"tests: {e.Message}");
        }
    }
}
