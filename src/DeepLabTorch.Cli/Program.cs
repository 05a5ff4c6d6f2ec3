using DeepLabTorch.Torch;

namespace DeepLabTorch.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Placeholder until the CLI issue lands: prints the engine it runs on.
        Console.WriteLine($"DeepLabTorch on libtorch {torch.__version__}, {torch.get_num_threads()} threads, CUDA {(torch.cuda.is_available() ? "available" : "not available")}");
        return 0;
    }
}
