using DeepLabTorch.Checkpoints;
using DeepLabTorch.Export;
using DeepLabTorch.Tests.Checkpoints;
using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace DeepLabTorch.Tests.Export;

public class SafetensorsExportTests : IClassFixture<PthFixture>
{
    private readonly PthFixture _files;
    public SafetensorsExportTests(PthFixture files) { _files = files; }

    [LinuxFact(LinuxOnly.Python)]
    public void PyTorchLoadsTheExportStrictlyAndGivesOurLogits()
    {
        using var dir = new TempDir();
        manual_seed(12);
        using var net = new TinyNet(4);
        net.eval();
        using (no_grad())
        {
            nn.init.uniform_(((BatchNorm2d)net.backbone[1]).running_var!, 0.5, 2);
            nn.init.uniform_(((BatchNorm2d)net.backbone[1]).running_mean!, -0.5, 0.5);
        }
        var path = dir["w.safetensors"];
        SafetensorsExport.Write(path, net.StateDictInOrder());

        using var scope = NewDisposeScope();
        var x = randn(2, 3, 5, 6);
        Python.WriteFloats(dir["x.bin"], x.ToArray<float>());
        var stdout = Python.Run("ckpt_load_safetensors.py", path, dir["x.bin"], "2,3,5,6", dir["y.bin"]);
        Assert.Contains("'format': 'pt'", stdout);
        Tensor ours;
        using (no_grad()) ours = net.forward(x);
        var theirs = Python.ReadFloats(dir["y.bin"]);
        var a = ours.ToArray<float>();
        Assert.Equal(a.Length, theirs.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - theirs[i]) <= 1e-5, $"logit {i}: ours {a[i]}, PyTorch {theirs[i]}");
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheExportVerbTurnsAReferenceCheckpointIntoPlainWeights()
    {
        using var dir = new TempDir();
        var output = dir["ref.safetensors"];
        var cli = Path.Combine(AppContext.BaseDirectory, "deeplab.dll");
        var stdout = Python.RunProcess("dotnet", new[] { cli, "export", "--weights", _files["reference.pth.tar"], "--format", "safetensors", "--output", output, "--num-classes", "5" });
        Assert.Contains("8 tensors", stdout);
        var y = dir["y.bin"];
        Python.Run("ckpt_load_safetensors.py", output, _files["input.bin"], "1,3,6,7", y);
        var expected = Python.ReadFloats(_files["logits.bin"]);
        var got = Python.ReadFloats(y);
        Assert.Equal(expected, got); // same weights, same engine: bitwise

        using var f = Safetensors.Read(output);
        Assert.DoesNotContain(f.Tensors.Keys, k => k.StartsWith("module.", StringComparison.Ordinal) || k.StartsWith("optimizer.", StringComparison.Ordinal));
        Assert.Null(CheckpointStore.ReadInfo(output, f.Metadata)); // weights only, no training state
    }

    [LinuxFact(LinuxOnly.Python)]
    public void AliasKeysAreWrittenAsCopiesOfTheirCanonicalTensors()
    {
        using var dir = new TempDir();
        using var net = new TinyNet(2);
        var path = dir["a.safetensors"];
        SafetensorsExport.Write(path, net.StateDictInOrder(), new Dictionary<string, string> { ["low_level.0.weight"] = "backbone.0.weight" });
        using var f = Safetensors.Read(path);
        Assert.True(f.Tensors["low_level.0.weight"].Equals(f.Tensors["backbone.0.weight"]));
        Assert.Throws<ArgumentException>(() => SafetensorsExport.Write(path, net.StateDictInOrder(), new Dictionary<string, string> { ["x"] = "nope" }));
    }

    [LinuxFact(LinuxOnly.Python)]
    public void TheExportVerbExplainsMissingPiecesAndBadFlags()
    {
        using var dir = new TempDir();
        var cli = Path.Combine(AppContext.BaseDirectory, "deeplab.dll");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { cli, "export", "--weights", dir["none.pth"], "--output", dir["o.safetensors"] }) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("none.pth: file not found", err);
    }
}
