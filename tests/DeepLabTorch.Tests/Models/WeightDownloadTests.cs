using System.Net;
using System.Security.Cryptography;
using DeepLabTorch.Models;
using Xunit;

namespace DeepLabTorch.Tests.Models;

/// <summary>Downloads of ImageNet files from a loopback HTTP server: a good file, a bad hash, a truncated transfer, a server that hangs, an HTTP error.</summary>
public sealed class WeightDownloadTests : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly string _base;
    private readonly TempDir _dir = new();
    private readonly byte[] _payload = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 31 % 251)).ToArray();
    private readonly Task _serving;
    private readonly CancellationTokenSource _stop = new();

    public WeightDownloadTests()
    {
        // A free port: bind, read it back, release it for HttpListener.
        var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        _base = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(_base);
        _listener.Start();
        _serving = Task.Run(Serve);
    }

    private async Task Serve()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext c;
            try { c = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                var path = c.Request.Url!.AbsolutePath;
                try
                {
                    switch (path)
                    {
                        case "/good.pth":
                            c.Response.ContentLength64 = _payload.Length;
                            await c.Response.OutputStream.WriteAsync(_payload);
                            c.Response.Close();
                            break;
                        case "/truncated.pth":
                            c.Response.ContentLength64 = _payload.Length;
                            await c.Response.OutputStream.WriteAsync(_payload.AsMemory(0, 1000));
                            await c.Response.OutputStream.FlushAsync();
                            c.Response.Abort();
                            break;
                        case "/hangs.pth":
                            c.Response.ContentLength64 = _payload.Length;
                            await c.Response.OutputStream.WriteAsync(_payload.AsMemory(0, 1000));
                            await c.Response.OutputStream.FlushAsync();
                            await Task.Delay(TimeSpan.FromSeconds(20), _stop.Token);
                            c.Response.Abort();
                            break;
                        default:
                            c.Response.StatusCode = 404;
                            c.Response.Close();
                            break;
                    }
                }
                catch (Exception)
                {
                    // The client gave up or the test ended.
                }
            });
        }
    }

    private string Hash => Convert.ToHexString(SHA256.HashData(_payload)).ToLowerInvariant();

    [Fact]
    public void AGoodFileLandsWhereItBelongsWithItsHashChecked()
    {
        var target = Path.Combine(_dir.Path, "cache", "good-" + Hash[..8] + ".pth");
        var reports = new List<DeepLabTorch.Runtime.ProgressReport>();
        Assert.Equal(target, PretrainedBackbone.Download(_base + "good.pth", target, Hash[..8], progress: new Recorder(reports)));
        Assert.True(reports[^1].Final, "the last report ends the download's progress line");
        Assert.Equal("download " + Path.GetFileName(target), reports[^1].Label);
        Assert.Equal(_payload, File.ReadAllBytes(target));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(target)!));   // no partial file left
        Assert.Equal(Hash[..8], PretrainedBackbone.HashPrefix(Path.GetFileName(target)));
    }

    [Fact]
    public void AWrongHashNamesBothAndKeepsNothing()
    {
        var target = Path.Combine(_dir.Path, "bad-deadbeef.pth");
        var e = Assert.Throws<UserException>(() => PretrainedBackbone.Download(_base + "good.pth", target, "deadbeef"));
        Assert.Contains(_base + "good.pth", e.Message);
        Assert.Contains(Hash, e.Message);
        Assert.Contains("deadbeef", e.Message);
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void ATruncatedTransferIsAnError()
    {
        var target = Path.Combine(_dir.Path, "t.pth");
        var e = Assert.Throws<UserException>(() => PretrainedBackbone.Download(_base + "truncated.pth", target, null));
        Assert.Contains(_base + "truncated.pth", e.Message);
        Assert.Matches("broke off|ended after", e.Message);
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void AServerThatHangsTimesOutWithAClearMessage()
    {
        var saved = Environment.GetEnvironmentVariable(PretrainedBackbone.StallVariable);
        // 3 s, not 1: at the suite's start, with every class starting in parallel, the loopback server's first bytes
        // once took over a second, and the client rightly said "no answer in 1 s" instead.
        Environment.SetEnvironmentVariable(PretrainedBackbone.StallVariable, "3");
        try
        {
            var e = Assert.Throws<UserException>(() => PretrainedBackbone.Download(_base + "hangs.pth", Path.Combine(_dir.Path, "h.pth"), null));
            Assert.Contains("stalled for 3 s after 1000 bytes", e.Message);
            Assert.Empty(Directory.GetFiles(_dir.Path));
        }
        finally
        {
            Environment.SetEnvironmentVariable(PretrainedBackbone.StallVariable, saved);
        }
    }

    [Fact]
    public void AnHttpErrorIsNamed()
    {
        var e = Assert.Throws<UserException>(() => PretrainedBackbone.Download(_base + "missing.pth", Path.Combine(_dir.Path, "m.pth"), null));
        Assert.Contains("HTTP 404", e.Message);
    }

    /// <summary>Records reports synchronously (Progress&lt;T&gt; would post them to the thread pool).</summary>
    private sealed class Recorder(List<DeepLabTorch.Runtime.ProgressReport> reports) : IProgress<DeepLabTorch.Runtime.ProgressReport>
    {
        public void Report(DeepLabTorch.Runtime.ProgressReport value) => reports.Add(value);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
        _dir.Dispose();
    }
}
