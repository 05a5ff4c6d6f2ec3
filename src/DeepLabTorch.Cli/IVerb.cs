namespace DeepLabTorch.Cli;

/// <summary>
/// A CLI verb: a CommandLineParser options class marked [Verb("name", HelpText = "...")] that runs itself.
/// Program discovers every such class in this assembly, so each verb lives in its own file under Verbs/.
/// </summary>
public interface IVerb
{
    /// <summary>Runs the verb; returns the process exit code (0 ok, 1 some inputs failed, 2 usage or user error).</summary>
    int Run();
}
