using DeepLabTorch.Inference;
using Xunit;
using static DeepLabTorch.Tests.Inference.InferenceTestUtil;

namespace DeepLabTorch.Tests.Inference;

public class InputFilesTests
{
    [Fact]
    public void FilesFoldersAndGlobs()
    {
        var dir = TempDir("inputs");
        try
        {
            foreach (var f in new[] { "b.jpg", "a.png", "c.txt", "sub/d.jpg", "sub/deeper/e.jpg", "v.mp4" })
            {
                var p = Path.Combine(dir, f);
                Directory.CreateDirectory(Path.GetDirectoryName(p)!);
                File.WriteAllText(p, "x");
            }
            string P(string f) => Path.Combine(dir, f).Replace('\\', '/');
            Assert.Equal(new[] { Path.Combine(dir, "c.txt") }, InputFiles.Expand(Path.Combine(dir, "c.txt")));
            Assert.Equal(new[] { Path.Combine(dir, "a.png"), Path.Combine(dir, "b.jpg") }, InputFiles.Expand(dir));
            Assert.Equal(new[] { Path.Combine(dir, "a.png"), Path.Combine(dir, "b.jpg"), Path.Combine(dir, "v.mp4") }, InputFiles.Expand(dir, includeVideo: true));
            Assert.Equal(new[] { P("b.jpg") }, InputFiles.Expand(P("*.jpg")).Select(x => x.Replace('\\', '/')));
            Assert.Equal(new[] { P("b.jpg"), P("sub/d.jpg"), P("sub/deeper/e.jpg") }, InputFiles.Expand(P("**/*.jpg")).Select(x => x.Replace('\\', '/')));
            Assert.Equal(new[] { P("sub/d.jpg") }, InputFiles.Expand(P("s?b/[d-e].jpg")).Select(x => x.Replace('\\', '/')));
            Assert.Throws<UserException>(() => InputFiles.Expand(P("*.gif")));
            Assert.Throws<UserException>(() => InputFiles.Expand(P("nothing-here.png")));
            Directory.CreateDirectory(Path.Combine(dir, "empty"));
            var e = Assert.Throws<UserException>(() => InputFiles.Expand(Path.Combine(dir, "empty")));
            Assert.Contains("no images", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
