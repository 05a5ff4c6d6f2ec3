namespace DeepLabTorch.Cli.Serving;

/// <summary>The page at /: plain HTML, CSS and JavaScript embedded in the assembly (no CDN, works offline).</summary>
internal static class WebPage
{
    private static readonly Lazy<string> Text = new(() =>
    {
        using var stream = typeof(WebPage).Assembly.GetManifestResourceStream("DeepLabTorch.Cli.Serving.Page.index.html")
            ?? throw new InvalidOperationException("the web page is missing from the assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    public static string Html => Text.Value;
}
