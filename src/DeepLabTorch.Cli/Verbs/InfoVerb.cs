using CommandLine;
using DeepLabTorch.Torch;

namespace DeepLabTorch.Cli.Verbs;

[Verb("info", HelpText = "Print the engine: libtorch version, threads, CUDA devices and build configuration.")]
public sealed class InfoVerb : IVerb
{
    [Option("build", HelpText = "Also print libtorch's build configuration.")]
    public bool Build { get; set; }

    public int Run()
    {
        Console.WriteLine($"libtorch {torch.__version__}");
        Console.WriteLine($"intra-op threads: {torch.get_num_threads()}");
        Console.WriteLine($"CUDA: {(torch.cuda.is_available() ? $"{torch.cuda.device_count()} device(s)" : "not available")}");
        if (Build) Console.WriteLine(torch.build_info());
        return 0;
    }
}
