using DeepLabTorch.Models.FaceParsing;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Models;

/// <summary>
/// What every network of the catalogue is to the rest of the framework (trainer, loader, predictor):
/// an <c>nn.Module&lt;Tensor, Tensor&gt;</c> from images [N, 3, H, W] to logits [N, classes, H, W] at the
/// input size, with its config, the state_dict prefixes of its classifiers (their shape follows the class
/// count), the optimizer's parameter groups of its reference recipe, and, for training, every output the
/// recipe puts a loss on (<see cref="ForwardAll"/>). DeepLabV3+ over any backbone, BiSeNet and STDC-Seg are
/// the implementations.
/// </summary>
public abstract class SegmentationModel : nn.Module<Tensor, Tensor>
{
    private bool _freezeBatchNorm;

    /// <summary>Registers the module under <paramref name="name"/>; <paramref name="config"/> is what it was built for.</summary>
    protected SegmentationModel(string name, ModelConfig config) : base(name)
    {
        Config = config;
    }

    /// <summary>The backbone or network, output stride and class count this model was built for.</summary>
    public ModelConfig Config { get; }

    /// <summary>The state_dict prefixes of the classifiers, whose shapes depend on the number of classes.</summary>
    public abstract IReadOnlyList<string> ClassifierPrefixes { get; }

    /// <summary>A name for messages: "DeepLabV3+ (mobilenet, output stride 16, 21 classes)".</summary>
    public abstract string Description { get; }

    /// <summary>
    /// When true, train() leaves every BatchNorm in eval mode (running statistics fixed, batch
    /// statistics unused) while the rest trains. Setting it applies at once.
    /// </summary>
    public bool FreezeBatchNorm
    {
        get => _freezeBatchNorm;
        set
        {
            _freezeBatchNorm = value;
            if (training) train(true);
        }
    }

    /// <summary>Train or eval mode, as TorchSharp's; with <see cref="FreezeBatchNorm"/> every BatchNorm stays in eval mode.</summary>
    public override void train(bool mode = true)
    {
        base.train(mode);
        if (mode && _freezeBatchNorm)
            foreach (var m in modules())
                if (m is TorchSharp.Modules.BatchNorm bn) bn.eval();
    }

    /// <summary>The reference recipe's optimizer groups: parameters and their multiple of the base learning rate.</summary>
    public abstract IReadOnlyList<(IReadOnlyList<Parameter> Parameters, double LearningRateMultiplier)> ParameterGroups();

    /// <summary>
    /// Every output the training recipe puts a loss on: the main logits, the auxiliary heads' and the
    /// detail heads'. DeepLabV3+ has the main logits only.
    /// </summary>
    internal virtual ParsingOutputs ForwardAll(Tensor input) => new(forward(input), Array.Empty<Tensor>(), Array.Empty<Tensor>());

    /// <summary>True when training puts losses on more than the main logits (see <see cref="ForwardAll"/>).</summary>
    internal virtual bool HasTrainingOutputs => false;

    /// <summary>Throws the one clear error for a training batch of one, which BatchNorm over a 1×1 map cannot normalise.</summary>
    protected void CheckTrainingBatch(Tensor input, string what)
    {
        if (training && input.shape[0] < 2 && !_freezeBatchNorm)
            throw new ArgumentException($"{GetType().Name} in training mode needs a batch of at least 2 images (BatchNorm of {what} " +
                "sees one value per channel); use a larger batch, eval(), or FreezeBatchNorm");
    }
}
