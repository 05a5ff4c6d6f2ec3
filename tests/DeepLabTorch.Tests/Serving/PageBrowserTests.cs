using System.Drawing;
using System.Net;
using System.Net.Http.Headers;
using DeepLabTorch.Data;
using DeepLabTorch.Tests.Inference;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Xunit;

namespace DeepLabTorch.Tests.Serving;

/// <summary>
/// Debian's chromium and its chromedriver (scripts/bootstrap.sh installs both), at /usr/bin or where DEEPLAB_CHROMIUM and
/// DEEPLAB_CHROMEDRIVER say. Selenium is handed both paths, so Selenium Manager never runs and nothing is downloaded.
/// </summary>
internal static class HeadlessChromium
{
    public static string Browser => Environment.GetEnvironmentVariable("DEEPLAB_CHROMIUM") is { Length: > 0 } b ? b : "/usr/bin/chromium";
    public static string Driver => Environment.GetEnvironmentVariable("DEEPLAB_CHROMEDRIVER") is { Length: > 0 } d ? d : "/usr/bin/chromedriver";

    /// <summary>Why the browser tests cannot run here, or null.</summary>
    public static string? Missing
    {
        get
        {
            var absent = new[] { Browser, Driver }.Where(p => !File.Exists(p)).ToArray();
            return absent.Length == 0 ? null
                : $"headless browser missing: {string.Join(" and ", absent)} not found (scripts/bootstrap.sh installs Debian's chromium and chromium-driver; "
                  + "DEEPLAB_CHROMIUM and DEEPLAB_CHROMEDRIVER name other paths)";
        }
    }

    /// <summary>A headless session with the browser's console log kept; a phone's screen when <paramref name="phone"/> is given.</summary>
    public static ChromeDriver Start(Size window, Size? phone = null)
    {
        // Only Selenium Manager reads these; it is not started when both paths are given, but should it ever be: no network, no statistics.
        Environment.SetEnvironmentVariable("SE_OFFLINE", "true");
        Environment.SetEnvironmentVariable("SE_AVOID_STATS", "true");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(Driver)!, Path.GetFileName(Driver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = Browser };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--force-device-scale-factor=1", $"--window-size={window.Width},{window.Height}");
        if (phone is { } p)
            options.EnableMobileEmulation(new OpenQA.Selenium.Chromium.ChromiumMobileEmulationDeviceSettings
            {
                Width = p.Width, Height = p.Height, PixelRatio = 1, EnableTouchEvents = true,
                UserAgent = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36",
            });
        options.SetLoggingPreference(LogType.Browser, LogLevel.All);
        return new ChromeDriver(service, options, TimeSpan.FromMinutes(2));
    }
}

/// <summary>A browser test: skipped, saying why, where chromium or chromedriver is missing.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (HeadlessChromium.Missing is { } why) Skip = why;
    }
}

/// <summary>
/// The portrait model (background, person) the serve tests use, a synthetic photo of a figure, and one server, started
/// on first use only, so that skipped tests start nothing.
/// </summary>
public sealed class PageFixture : IDisposable
{
    public const int Height = 120, Width = 160;
    private readonly Lazy<ServerProcess> _server;

    public PageFixture()
    {
        Dir = InferenceTestUtil.TempDir("page");
        Photo = Path.Combine(Dir, "figure.png");
        _server = new Lazy<ServerProcess>(() =>
        {
            var weights = PredictVerbTests.SaveModel(Dir, 2, new[] { "background", "person" }, out var model);
            model.Dispose();
            ImageCodec.WritePng(Photo, Figure(), Height, Width);
            return ServerProcess.Start("--weights", weights, "--device", "cpu", "--threads", "1", "--log-level", "debug");
        });
    }

    public string Dir { get; }
    public string Photo { get; }
    public ServerProcess Server => _server.Value;

    /// <summary>A figure (head and shoulders) before a sky and a lawn: something to look at in the screenshot.</summary>
    private static byte[] Figure()
    {
        var rgb = new byte[Height * Width * 3];
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
            {
                double hx = x - 80, hy = y - 42, bx = (x - 80) / 42.0, by = (y - 125) / 52.0;
                (int r, int g, int b) c = y > 92 ? (70 + x / 4, 140, 60) : (120 + y, 170 + y / 2, 235);
                if (bx * bx + by * by < 1) c = (40, 70 + y / 3, 150);         // shoulders: a blue shirt
                if (hx * hx / 380 + hy * hy / 560 < 1) c = (225, 180 - y / 4, 150);   // the head
                if (hx * hx / 420 + (hy + 10) * (hy + 10) / 300 < 1 && y < 36) c = (70, 45, 30);   // hair
                int i = 3 * (y * Width + x);
                rgb[i] = (byte)c.r; rgb[i + 1] = (byte)c.g; rgb[i + 2] = (byte)c.b;
            }
        return rgb;
    }

    public void Dispose()
    {
        if (_server.IsValueCreated) _server.Value.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}

/// <summary>
/// serve's page in headless chromium: a photo chosen through the file input, a background picked, the button pressed;
/// what the page shows must be, pixel for pixel, what POST /v1/matte answers for the same photo and settings, the
/// page must raise no error in the console, and it must fit a phone's screen without sideways scrolling.
/// DEEPLAB_SCREENSHOT=FILE.png saves the page with a result (docs/images/serve-page.png is one).
/// </summary>
public class PageBrowserTests(PageFixture f) : IClassFixture<PageFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    [BrowserFact]
    public async Task ThePageShowsWhatTheMatteEndpointAnswers()
    {
        using var driver = HeadlessChromium.Start(new Size(1100, 800));
        driver.Navigate().GoToUrl(f.Server.Url + "/");
        Assert.StartsWith("DeepLabTorch", driver.Title);

        // A photo through the file input, as a tap on the drop zone would choose it.
        driver.FindElement(By.Id("photo")).SendKeys(f.Photo);
        Assert.True(driver.FindElement(By.Id("run")).Enabled);
        var original = Rgb(Shown(driver, "original"));
        Assert.Equal(ImageCodec.DecodeImage(f.Photo).Rgb, original);

        // A preset swatch ("night"), alpha blending.
        driver.FindElement(By.CssSelector(".swatch[title=night]")).Click();
        Run(driver);
        var night = await Direct("background=%231d2330&blend=alpha");
        AssertShows(driver, night, await Direct("background=%231d2330&blend=alpha&alpha=1"));
        Assert.Equal(driver.FindElement(By.Id("result")).GetAttribute("src"), driver.FindElement(By.Id("download")).GetAttribute("href"));
        Assert.True(driver.FindElement(By.Id("download")).Displayed);

        // The colour picker, then Poisson blending on.
        PickColour(driver, "#2040ff");
        driver.FindElement(By.Id("poisson")).Click();
        Run(driver);
        var poisson = await Direct("background=%232040ff&blend=poisson");
        var alpha = await Direct("background=%232040ff&blend=alpha");
        Assert.NotEqual(Rgb(alpha), Rgb(poisson));   // else the toggle could not be told from no toggle
        Assert.NotEqual(Rgb(night), Rgb(alpha));     // nor this colour from the last
        var poissonMatte = await Direct("background=%232040ff&blend=poisson&alpha=1");
        AssertShows(driver, poisson, poissonMatte);

        // Blur, after a colour: the checkbox wins.
        driver.FindElement(By.Id("poisson")).Click();
        driver.FindElement(By.Id("blur")).Click();
        Run(driver);
        AssertShows(driver, await Direct("background=blur&blend=alpha"), await Direct("background=blur&blend=alpha&alpha=1"));

        // A colour picked after blur replaces the blur; Poisson on again. The screenshot shows this one.
        PickColour(driver, "#2040ff");
        driver.FindElement(By.Id("poisson")).Click();
        Run(driver);
        AssertShows(driver, poisson, poissonMatte);
        AssertStacked(driver);
        if (Environment.GetEnvironmentVariable("DEEPLAB_SCREENSHOT") is { Length: > 0 } shot)
            driver.GetScreenshot().SaveAsFile(shot);

        // An uploaded picture as the background: it replaces the colour, and the page sends it as the 'background' field.
        var picture = Path.Combine(f.Dir, "stripes.png");
        var stripes = new byte[40 * 50 * 3];
        for (int i = 0; i < stripes.Length; i++) stripes[i] = (byte)((i / 3 % 50) < 25 ? 230 : 20 + i % 3 * 60);
        ImageCodec.WritePng(picture, stripes, 40, 50);
        driver.FindElement(By.Id("bgfile")).SendKeys(picture);
        Assert.Empty(driver.FindElements(By.CssSelector(".swatch.on")));
        Run(driver);
        var onPicture = await Direct("blend=poisson", picture);
        Assert.NotEqual(Rgb(poisson), Rgb(onPicture));
        AssertShows(driver, onPicture, await Direct("blend=poisson&alpha=1", picture));

        // A swatch after the picture drops the picture.
        driver.FindElement(By.CssSelector(".swatch[title=night]")).Click();
        Assert.Equal("", driver.FindElement(By.Id("bgfile")).GetAttribute("value"));
        driver.FindElement(By.Id("poisson")).Click();
        Run(driver);
        AssertShows(driver, night, await Direct("background=%231d2330&blend=alpha&alpha=1"));

        // A new photo clears the last answer: no old result on show, nothing to download.
        driver.FindElement(By.Id("photo")).SendKeys(picture);
        Assert.Null(driver.FindElement(By.Id("result")).GetAttribute("src"));
        Assert.Null(driver.FindElement(By.Id("matte")).GetAttribute("src"));
        Assert.False(driver.FindElement(By.Id("download")).Displayed);
        AssertNoConsoleErrors(driver);
    }

    [BrowserFact]
    public void OnAPhoneThePageDoesNotScrollSideways()
    {
        using var driver = HeadlessChromium.Start(new Size(390, 844), phone: new Size(390, 844));
        driver.Navigate().GoToUrl(f.Server.Url + "/");
        driver.FindElement(By.Id("photo")).SendKeys(f.Photo);
        Run(driver);
        var js = (IJavaScriptExecutor)driver;
        var inner = Convert.ToInt64(js.ExecuteScript("return window.innerWidth;"));
        var scroll = Convert.ToInt64(js.ExecuteScript("return document.documentElement.scrollWidth;"));
        // A phone's browser widens the layout viewport (innerWidth) to content that overflows, zoomed out: so the page
        // must fit the screen's 390 px, not just innerWidth.
        Assert.True(scroll <= 390 && inner == 390, $"on a 390 px phone screen the page is {scroll} px wide (window.innerWidth {inner})");
        AssertStacked(driver);
        if (Environment.GetEnvironmentVariable("DEEPLAB_SCREENSHOT") is { Length: > 0 } shot)
            driver.GetScreenshot().SaveAsFile(Path.ChangeExtension(shot, null) + "-phone.png");
        AssertNoConsoleErrors(driver);
    }

    /// <summary>The page's blocks lie one below the other, none drawn over the one before it.</summary>
    private static void AssertStacked(IWebDriver driver)
    {
        var overlaps = ((IJavaScriptExecutor)driver).ExecuteScript("""
            const blocks = [...document.querySelectorAll("body > *:not(script)")].filter(e => e.getClientRects().length > 0);
            const found = [];
            for (let i = 1; i < blocks.length; i++) {
              const above = blocks[i - 1].getBoundingClientRect(), below = blocks[i].getBoundingClientRect();
              if (below.top < above.bottom - 0.5) found.push(`${blocks[i].id || blocks[i].tagName} (top ${below.top}) over ${blocks[i - 1].id || blocks[i - 1].tagName} (bottom ${above.bottom})`);
            }
            return found.join("; ");
            """) as string;
        Assert.True(string.IsNullOrEmpty(overlaps), "blocks drawn over each other: " + overlaps);
    }

    /// <summary>Sets the colour input as a person's pick does: its value, then the input event.</summary>
    private static void PickColour(IWebDriver driver, string colour) =>
        ((IJavaScriptExecutor)driver).ExecuteScript(
            "const c = document.getElementById('colour'); c.value = arguments[0]; c.dispatchEvent(new Event('input', { bubbles: true }));", colour);

    /// <summary>Presses the button and waits for the page to say it is done; an error on the page fails the test with its message.</summary>
    private static void Run(IWebDriver driver)
    {
        driver.FindElement(By.Id("run")).Click();
        var state = new WebDriverWait(driver, Patience).Until(d =>
        {
            var s = d.FindElement(By.TagName("body")).GetAttribute("data-state");
            return s is "done" or "error" && d.FindElement(By.Id("run")).Enabled ? s : null;
        });
        Assert.True(state == "done", "the page says: " + driver.FindElement(By.Id("status")).Text);
    }

    /// <summary>The result and matte panes hold exactly the endpoint's composite and matte, as bytes and as shown.</summary>
    private static void AssertShows(IWebDriver driver, byte[] composite, byte[] matte)
    {
        var expected = Rgb(composite);
        Assert.Equal(expected, Rgb(Blob(driver, "result")));
        Assert.Equal(expected, Rgb(Shown(driver, "result")));
        Assert.Equal(ImageCodec.DecodeMask("matte", matte).Indices, ImageCodec.DecodeMask("page's matte", Blob(driver, "matte")).Indices);
    }

    private static byte[] Rgb(byte[] png) => ImageCodec.DecodeImage("png", png).Rgb;

    /// <summary>The bytes behind an image's blob: URL, read by the page itself.</summary>
    private static byte[] Blob(IWebDriver driver, string id)
    {
        var b64 = ((IJavaScriptExecutor)driver).ExecuteAsyncScript("""
            const done = arguments[arguments.length - 1];
            fetch(document.getElementById(arguments[0]).src).then(r => r.arrayBuffer()).then(buffer => {
              const bytes = new Uint8Array(buffer); let s = "";
              for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
              done(btoa(s));
            }).catch(e => done("error: " + e));
            """, id) as string ?? "error: no answer";
        Assert.False(b64.StartsWith("error:", StringComparison.Ordinal), b64);
        return Convert.FromBase64String(b64);
    }

    /// <summary>What an image element shows, at its natural size: drawn onto a canvas and read back, as a PNG.</summary>
    private static byte[] Shown(IWebDriver driver, string id)
    {
        var b64 = ((IJavaScriptExecutor)driver).ExecuteAsyncScript("""
            const done = arguments[arguments.length - 1];
            const img = document.getElementById(arguments[0]);
            img.decode().then(() => {
              const canvas = document.createElement("canvas");
              canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
              canvas.getContext("2d").drawImage(img, 0, 0);
              done(canvas.toDataURL("image/png").split(",")[1]);
            }).catch(e => done("error: " + e));
            """, id) as string ?? "error: no answer";
        Assert.False(b64.StartsWith("error:", StringComparison.Ordinal), b64);
        return Convert.FromBase64String(b64);
    }

    private static void AssertNoConsoleErrors(IWebDriver driver)
    {
        var severe = driver.Manage().Logs.GetLog(LogType.Browser).Where(e => e.Level == LogLevel.Severe).Select(e => e.Message).ToArray();
        Assert.True(severe.Length == 0, "the browser console has errors:\n" + string.Join("\n", severe));
    }

    /// <summary>POST /v1/matte with the photo and a query: the server's own answer, the reference for the page.</summary>
    private async Task<byte[]> Direct(string query, string? backgroundFile = null)
    {
        var image = new ByteArrayContent(await File.ReadAllBytesAsync(f.Photo));
        image.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        var form = new MultipartFormDataContent { { image, "image", "figure.png" } };
        if (backgroundFile != null)
        {
            var background = new ByteArrayContent(await File.ReadAllBytesAsync(backgroundFile));
            background.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            form.Add(background, "background", Path.GetFileName(backgroundFile));
        }
        using var response = await f.Server.Client.PostAsync("/v1/matte?" + query, form);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{query}: {(int)response.StatusCode} {System.Text.Encoding.UTF8.GetString(bytes)}");
        return bytes;
    }
}
