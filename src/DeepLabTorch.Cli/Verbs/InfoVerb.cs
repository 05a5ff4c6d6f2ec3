using CommandLine;
using DeepLabTorch.Distributed;
using DeepLabTorch.Runtime;
using TorchSharp;

namespace DeepLabTorch.Cli.Verbs;

[Verb("info", HelpText = "Print the engine: TorchSharp and libtorch versions, threads, the backbones built in, the CPU and its kernel verdict, CUDA devices, the Debian 12 load fix, and MPI and NCCL for training on several processes.")]
public sealed class InfoVerb : VerbBase
{
    [Option("threads", HelpText = "The intra-op thread count to report, and to give the CPU-kernel verdict for (default: one per core).")]
    public int? Threads { get; set; }

    public override int Run()
    {
        TorchRuntime.EnsureLoaded();
        var log = Loggers.CreateLogger(LogCategories.Runtime);
        Engine.SetThreads(Threads, log);
        Results.WriteLine($"TorchSharp {TorchRuntime.TorchSharpVersion}");
        Results.WriteLine($"libtorch {TorchRuntime.LibTorchVersion}");
        Results.WriteLine($"intra-op threads: {torch.get_num_threads()}");
        Results.WriteLine($"native heap: {NativeHeap.Status}");
        Results.WriteLine($"backbones: {string.Join(", ", Models.ModelCatalog.Names)}");
        Results.WriteLine($"networks: {string.Join(", ", Models.ModelCatalog.Networks.Select(n => n.Name))}");
        foreach (var line in KernelGuard.Describe(log)) Results.WriteLine(line);
        Results.WriteLine($"CUDA: {(torch.cuda.is_available() ? $"{torch.cuda.device_count()} device(s)" : "not available")}");
        var (path, weak) = TorchRuntime.ElfFixStatus();
        var fix = weak switch
        {
            true => $"applied ({ElfVersionNeeds.GlibcxxVersion} requirement is weak)",
            false => $"NOT applied ({ElfVersionNeeds.GlibcxxVersion} is a hard requirement)",
            null when !OperatingSystem.IsLinux() => "not needed (Linux only)",
            null => $"not needed (no {ElfVersionNeeds.GlibcxxVersion} requirement)",
        };
        Results.WriteLine($"GLIBCXX load fix: {fix}{(path is null ? "" : $" in {path}")}");
        // Loading the libraries initialises nothing: MPI_Get_library_version may be called before MPI_Init.
        Results.WriteLine($"MPI: {(OpenMpi.MissingReason() is { } missing ? missing : $"{OpenMpi.LibraryVersion()} ({OpenMpi.LoadedFrom})")}");
        Results.WriteLine($"NCCL: {(Nccl.Unavailable() is { } why ? why : $"{Nccl.Version()}")}");
        return 0;
    }
}
