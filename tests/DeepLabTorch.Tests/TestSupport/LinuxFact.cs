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
