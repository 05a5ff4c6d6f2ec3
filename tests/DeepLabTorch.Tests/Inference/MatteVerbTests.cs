using DeepLabTorch.Cli;
using DeepLabTorch.Data;
using DeepLabTorch.Inference;
using DeepLabTorch.Extensions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

/// <summary>The matte verb end to end: images against a hand-computed composite, backgrounds, and video through ffmpeg.</summary>
public class MatteVerbTests
{
    private static int Cli(params string[] args) => Program.Run(args, new StringWriter(), new StringWriter());

    [Fact]
    public void ImageCompositeEqualsProbabilityBlendWithoutRefinement()
    {
        var dir = TempDir("matte-verb");
        try
        {
            const int h = 30, w = 38;
            var rgb = TestImage(h, w, 3);
            var input = Path.Combine(dir, "photo.png");
            ImageCodec.WritePng(input, rgb, h, w);
            var weights = PredictVerbTests.SaveModel(dir, 2, new[] { "background", "person" }, out var model);
            using var _m = model;
            var output = Path.Combine(dir, "out.png");
            Assert.Equal(0, Cli("matte", "--weights", weights, "--input", input, "--background", "#2040ff", "--output", output,
                "--edge-radius", "0", "--save-alpha", "--device", "cpu", "--quiet"));

            // Expected by hand: p = softmax(logits)[1]; out = round(255·(img/255·p + bg/255·(1−p))).
            float[] logits;
            using (no_grad())
            using (var x = ImageTensor.FromRgb(rgb, h, w))
            using (var y = model.forward(x))
                logits = y.ToArray<float>();
            var (got, gh, gw) = ImageCodec.DecodeImage(output);
            Assert.Equal((h, w), (gh, gw));
            var bg = new[] { 0x20, 0x40, 0xff };
            int off = 0;
            for (int i = 0; i < h * w; i++)
            {
                double p = 1 / (1 + Math.Exp(logits[i] - logits[h * w + i]));
                for (int k = 0; k < 3; k++)
                {
                    double want = Math.Round(255 * (rgb[3 * i + k] / 255.0 * p + bg[k] / 255.0 * (1 - p)));
                    if (Math.Abs(want - got[3 * i + k]) > 1) off++;
                }
            }
            Assert.True(off == 0, $"{off} channel values differ by more than 1 from the hand-computed composite");
            var (alpha, ah, aw) = ImageCodec.DecodeMask(Path.Combine(dir, "out_alpha.png"));
            Assert.Equal((h, w), (ah, aw));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void FolderWithPictureAndBlurBackgroundsAndVocPersonClass()
    {
        var dir = TempDir("matte-folder");
        try
        {
            var input = Directory.CreateDirectory(Path.Combine(dir, "in")).FullName;
            ImageCodec.WriteJpeg(Path.Combine(input, "one.jpg"), TestImage(24, 32, 1), 24, 32);
            ImageCodec.WritePng(Path.Combine(input, "two.png"), TestImage(20, 20, 2), 20, 20);
            var beach = Path.Combine(dir, "beach.png");
            ImageCodec.WritePng(beach, TestImage(50, 90, 5), 50, 90);
            var weights = PredictVerbTests.SaveModel(dir, 21, VocClasses.Names.ToArray(), out var model);
            model.Dispose();
            var outPic = Path.Combine(dir, "pic");
            Assert.Equal(0, Cli("matte", "--weights", weights, "--input", input, "--background", beach, "--output", outPic, "--device", "cpu", "--quiet"));
            Assert.Equal((24, 32), Size(Path.Combine(outPic, "one.png")));
            Assert.Equal((20, 20), Size(Path.Combine(outPic, "two.png")));
            var outBlur = Path.Combine(dir, "blur");
            Assert.Equal(0, Cli("matte", "--weights", weights, "--input", input, "--background", "blur", "--output", outBlur,
                "--person-class", "person", "--device", "cpu", "--quiet"));
            Assert.True(File.Exists(Path.Combine(outBlur, "two.png")));
            // Bad background and a class the model lacks are user errors.
            Assert.Equal(2, Cli("matte", "--weights", weights, "--input", input, "--background", "#12", "--output", outBlur));
            Assert.Equal(2, Cli("matte", "--weights", weights, "--input", input, "--background", "red", "--output", outBlur, "--person-class", "30"));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static (int, int) Size(string png)
    {
        var (_, h, w) = ImageCodec.DecodeImage(png);
        return (h, w);
    }

    [LinuxFact(LinuxOnly.Ffmpeg)]
    public void VideoKeepsFramesSizeAndAudio()
    {
        var dir = TempDir("matte-video");
        try
        {
            var input = VideoTests.MakeTestVideo(dir);
            var weights = PredictVerbTests.SaveModel(dir, 2, new[] { "background", "person" }, out var model);
            model.Dispose();
            var output = Path.Combine(dir, "matted.mp4");
            Assert.Equal(0, Cli("matte", "--weights", weights, "--input", input, "--background", "green", "--output", output,
                "--smooth", "0.6", "--device", "cpu", "--quiet"));
            Assert.Equal((10L, 64, 48, 1), VideoTests.Describe(output));
        }
        finally { Directory.Delete(dir, true); }
    }
}
