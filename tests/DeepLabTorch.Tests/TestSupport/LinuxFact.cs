using Xunit;

namespace DeepLabTorch.Tests;

/// <summary>A test of something only Linux has (glibc's heap, /proc, ELF files); elsewhere it is skipped, saying why.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute(string what)
    {
        if (!OperatingSystem.IsLinux()) Skip = $"Linux only: {what}";
    }
}

/// <summary>A theory of something only Linux has; elsewhere it is skipped, saying why (as <see cref="LinuxFactAttribute"/>).</summary>
public sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute(string what)
    {
        if (!OperatingSystem.IsLinux()) Skip = $"Linux only: {what}";
    }
}

/// <summary>
/// The reasons the tests give in [LinuxFact]/[LinuxTheory] for what this Debian machine has and others may not,
/// one wording for each (LinuxOnlyMarksTests checks that tests reaching these tools are marked).
/// </summary>
internal static class LinuxOnly
{
    /// <summary>Tests/reference's scripts under Debian's interpreter and packages, as scripts/bootstrap.sh installs them.</summary>
    public const string Python = "runs tests/reference with Debian's /usr/bin/python3 and python3-torch, -numpy, -pil, -scipy, -onnx";

    /// <summary>ffmpeg and ffprobe on PATH (Debian's ffmpeg package).</summary>
    public const string Ffmpeg = "runs ffmpeg/ffprobe (Debian's ffmpeg package)";

    /// <summary>A shell script (scripts/*.sh) run with bash.</summary>
    public const string Bash = "runs a shell script (scripts/*.sh) with bash";

    /// <summary>util-linux's script(1) (-qec, a command through the shell) gives the CLI a terminal.</summary>
    public const string Terminal = "runs the CLI on a terminal through util-linux's script(1)";

    /// <summary>kill(1) sends SIGINT, SIGTERM or SIGHUP to a child; the exit codes are 128 + the signal's number.</summary>
    public const string Signals = "sends POSIX signals with kill(1)";

    /// <summary>Paths compared as strings with '/' separators (XDG_CACHE_HOME, HOME).</summary>
    public const string UnixPaths = "expects '/'-separated XDG/HOME paths";
}
