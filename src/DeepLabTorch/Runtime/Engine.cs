using System.Globalization;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Runtime;

/// <summary>
/// The one engine set-up every verb and the trainer use: load TorchSharp, pick the device, set the
/// intra-op threads and (for training) the seed. Messages name the flag.
/// </summary>
internal static class Engine
{
    /// <summary>
    /// The device: --device if given (cpu, cuda, cuda:N), else cuda:first(gpuIds) when CUDA is there
    /// and not refused (noCuda), else the CPU.
    /// </summary>
    public static Device ResolveDevice(string? device, bool noCuda = false, string? gpuIds = null)
    {
        TorchRuntime.EnsureLoaded();
        if (device is not null)
        {
            Device d;
            try { d = torch.device(device); }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
            {
                throw new UserException($"--device '{device}': expected cpu, cuda or cuda:N", e);
            }
            if (d.type == DeviceType.CUDA && !cuda.is_available())
                throw new UserException($"--device {device}: CUDA is not available (this build uses TorchSharp's CPU backend, or the machine has no GPU)");
            return d;
        }
        if (noCuda || !cuda.is_available()) return CPU;
        var first = string.IsNullOrWhiteSpace(gpuIds) ? 0 : int.Parse(gpuIds.Split(',')[0].Trim(), CultureInfo.InvariantCulture);
        return new Device(DeviceType.CUDA, first);
    }

    /// <summary>Intra-op threads: --threads when given (at least 1), else one per core.</summary>
    /// <param name="log">Where the CPU-kernel guard reports a verdict it decides here (KernelGuard.Ensure; category DeepLabTorch.Runtime).</param>
    public static int SetThreads(int? threads, ILogger? log = null)
    {
        TorchRuntime.EnsureLoaded();
        if (threads is { } th)
        {
            if (th < 1) throw new UserException($"--threads must be >= 1, got {th}");
            set_num_threads(th);
        }
        else if (get_num_threads() < Environment.ProcessorCount) set_num_threads(Environment.ProcessorCount);
        // Right answers on this CPU at this thread count (a cached verdict, or a check on first use).
        KernelGuard.Ensure(get_num_threads(), log);
        return get_num_threads();
    }

    /// <summary>Device and threads together, as the inference verbs need them.</summary>
    /// <param name="log">As for <see cref="SetThreads"/>.</param>
    public static Device SetUp(string? device, int? threads, bool noCuda = false, ILogger? log = null)
    {
        SetThreads(threads, log);
        return ResolveDevice(device, noCuda);
    }
}
