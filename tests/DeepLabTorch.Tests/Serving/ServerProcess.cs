using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using DeepLabTorch.Tests.Cli;

namespace DeepLabTorch.Tests.Serving;

/// <summary>`deeplab serve --port 0` as a child process on loopback: its address, a client, and a SIGTERM stop.</summary>
public sealed partial class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly Task _stderrPump;

    private ServerProcess(Process process, string url)
    {
        _process = process;
        Url = url;
        Client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(120) };
        _stderrPump = Task.Run(async () =>
        {
            string? line;
            while ((line = await process.StandardError.ReadLineAsync()) != null)
                lock (_stderr) _stderr.AppendLine(line);
        });
    }

    public string Url { get; }
    public HttpClient Client { get; }
    public int Pid => _process.Id;

    public string Stderr
    {
        get { lock (_stderr) return _stderr.ToString(); }
    }

    /// <summary>Starts the server and waits (up to two minutes) for the line that gives its address.</summary>
    public static ServerProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(CliRunner.Dll);
        psi.ArgumentList.Add("serve");
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add("0");
        var p = Process.Start(psi)!;
        var read = Task.Run(() =>
        {
            string? line;
            while ((line = p.StandardOutput.ReadLine()) != null)
                if (Address().Match(line) is { Success: true } m) return m.Value;
            return null;
        });
        if (!read.Wait(TimeSpan.FromMinutes(2)) || read.Result is null)
        {
            var err = p.HasExited ? p.StandardError.ReadToEnd() : "";
            if (!p.HasExited) p.Kill(true);
            throw new InvalidOperationException($"deeplab serve did not start: {err}");
        }
        _ = p.StandardOutput.ReadToEndAsync();
        return new ServerProcess(p, read.Result);
    }

    /// <summary>SIGTERM, then the exit code (the process is killed after a minute).</summary>
    public int Terminate()
    {
        if (!_process.HasExited) Process.Start("kill", $"-TERM {_process.Id}")!.WaitForExit();
        if (!_process.WaitForExit(60_000)) _process.Kill(true);
        _process.WaitForExit();
        _stderrPump.Wait(TimeSpan.FromSeconds(10));
        return _process.ExitCode;
    }

    public void Dispose()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    [GeneratedRegex(@"http://[0-9.\[\]:]+")]
    private static partial Regex Address();
}
