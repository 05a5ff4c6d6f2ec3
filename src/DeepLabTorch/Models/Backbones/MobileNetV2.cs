using DeepLabTorch.Extensions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models.Backbones;

/// <summary>
/// MobileNetV2 (width 1.0) as the reference DeepLabV3+ uses it: one Sequential "features"
/// (stem conv + 17 inverted residuals). Once the output stride is reached, strides become dilation
/// (with the reference's schedule: a stage gets the rate accumulated by the stages before it).
/// Low-level features are features[0..3] (24 channels, stride 4), high-level the rest (320 channels).
/// The reference also exposes features[0:4] and features[4:] as "low_level_features" and
/// "high_level_features"; those names are aliases of the same tensors (see ModelCatalog).
/// </summary>
public sealed class MobileNetV2 : Backbone
{
    private readonly Sequential features;

    public MobileNetV2(int outputStride) : base(nameof(MobileNetV2), outputStride)
    {
        int stem = Architecture.MobileNetStemChannels;
        features = nn.Sequential(nn.Sequential(
            Layers.Conv(3, stem, 3, stride: 2, padding: 1),
            new BatchNorm2d(stem),
            nn.ReLU6(inplace: true)));
        int currentStride = 2, rate = 1;
        long channels = stem;
        foreach (var stage in Architecture.MobileNetStages)
        {
            int stride, dilation;
            if (currentStride == outputStride)
            {
                stride = 1;
                dilation = rate;
                rate *= stage.Stride;
            }
            else
            {
                stride = stage.Stride;
                dilation = 1;
                currentStride *= stage.Stride;
            }
            for (int i = 0; i < stage.Repeats; i++)
            {
                features.append(new InvertedResidual(channels, stage.Channels, i == 0 ? stride : 1, dilation, stage.Expansion));
                channels = stage.Channels;
            }
        }
        RegisterComponents();
        Layers.InitWeights(this, nn.init.FanInOut.FanIn);
    }

    public override int LowLevelChannels => 24;
    public override int OutputChannels => 320;

    /// <summary>The Sequential holding every layer (features.0 … features.17).</summary>
    public Sequential Features => features;

    public override BackboneFeatures forward(Tensor x)
    {
        Tensor current = x;
        Tensor? low = null;
        for (int i = 0; i < features.Count; i++)
        {
            var next = ((nn.Module<Tensor, Tensor>)features[i]).Run(current);
            // Keep the low-level map (the output of features[3]); free every other intermediate.
            if (!ReferenceEquals(current, x) && !ReferenceEquals(current, low)) current.Dispose();
            current = next;
            if (i == Architecture.MobileNetLowLevelModules - 1) low = current;
        }
        if (low is null) throw new InvalidOperationException("MobileNetV2 has fewer feature modules than its low-level split");
        return new BackboneFeatures(current, low);
    }
}
