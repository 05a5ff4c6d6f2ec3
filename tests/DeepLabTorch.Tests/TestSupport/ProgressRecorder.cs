using DeepLabTorch.Runtime;

namespace DeepLabTorch.Tests;

/// <summary>
/// Keeps every progress report, in order, on the reporting thread (System.Progress would post them to the
/// thread pool, out of order and after the call returns).
/// </summary>
internal sealed class ProgressRecorder : IProgress<ProgressReport>
{
    private readonly List<ProgressReport> _reports = new();

    public IReadOnlyList<ProgressReport> Reports
    {
        get { lock (_reports) return _reports.ToList(); }
    }

    public void Report(ProgressReport value)
    {
        lock (_reports) _reports.Add(value);
    }
}
