namespace DeepLabTorch.Tests.Data;

/// <summary>Runs the CLI in-process with stdout captured (serialised: Console is process-wide).</summary>
internal static class CliRunner
{
    private static readonly object Gate = new();

    public static (int Code, string Output) Run(params string[] args)
    {
        lock (Gate)
        {
            var saved = Console.Out;
            var sw = new StringWriter();
            var err = new StringWriter();
            Console.SetOut(sw);
            try
            {
                int code = DeepLabTorch.Cli.Program.Run(args, sw, err);
                return (code, sw + err.ToString());
            }
            finally
            {
                Console.SetOut(saved);
            }
        }
    }
}
