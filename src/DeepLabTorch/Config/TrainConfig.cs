using System.Text.Json.Serialization;

namespace DeepLabTorch.Config;

/// <summary>
/// Everything a training run needs, each setting declared once here: its [Setting] gives the help and
/// the checks on its value, its initialiser the default (null means "decided from the other settings",
/// see <see cref="TrainConfigRules.Resolve"/>), its name the JSON key (snake_case, configs/ and the run
/// folder's config.json) and the flag (kebab-case, --out-stride). Defaults are the reference train.py's.
/// </summary>
public sealed record TrainConfig
{
    // Each setting's documentation is its [Setting] help: `deeplab train --help` prints it, with the default and bounds.
#pragma warning disable CS1591
    // Model
    [Setting("Backbone network:", Choices = SettingAttribute.BackboneNames, Default = "resnet, as the reference")]
    public string Backbone { get; init; } = "resnet";
    [Setting("Output stride.", Choices = Models.Architecture.OutputStrideChoices)]
    public int OutStride { get; init; } = 16;
    [Setting("Number of classes.", Min = 2, Max = 255, Default = "the data set's")]
    public int? NumClasses { get; init; }
    [Setting("Keep every BatchNorm in eval mode while training.")]
    public bool FreezeBn { get; init; }
    [Setting("On several processes (mpirun, srun, --nproc): BatchNorm normalises over the global batch of all of them, forward and backward. No effect on one process.")]
    public bool SyncBn { get; init; }
    /// <summary>
    /// The ASPP and decoder dropout (0.5, 0.5, 0.1) while training. Config only: false makes a step a
    /// function of the batch alone, for exact comparisons (one process against several).
    /// </summary>
    [Setting("The ASPP and decoder dropout while training; false makes a step a function of the batch alone.", Flag = false)]
    public bool Dropout { get; init; } = true;

    // Data
    [Setting("Data set. synthetic generates data/synthetic on first use; celebamask-hq reads CelebAMask-HQ's download layout (face parsing).",
        Choices = "pascal|sbd|folder|synthetic|" + Data.CelebAMaskHq.Name + "|" + Data.Cityscapes.Name + "|" + Data.Coco.Name)]
    public string Dataset { get; init; } = "pascal";
    [Setting("Data set folder (VOCdevkit parent for pascal; required except for synthetic).")]
    public string? DataRoot { get; init; }
    [Setting("Add SBD to the pascal training set (trainaug). Off by default here; the reference always adds it.")]
    public bool UseSbd { get; init; }
    [Setting("Data loader threads.", Min = 0)]
    public int Workers { get; init; } = 4;
    [Setting("Base image size for the random rescale.", Min = 1)]
    public int BaseSize { get; init; } = 513;
    [Setting("Training crop size.", Min = 1)]
    public int CropSize { get; init; } = 513;
    [Setting("Smallest random rescale of the short side, as a fraction of --base-size.", Above = 0)]
    public double MinScale { get; init; } = 0.5;
    [Setting("Largest random rescale of the short side, as a fraction of --base-size.", Above = 0)]
    public double MaxScale { get; init; } = 2.0;
    [Setting("Colour jitter: brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s] (0: off; the face-parsing recipe uses 0.5).", Min = 0, Max = 1)]
    public double ColorJitter { get; init; }
    [Setting("Label pairs that trade places when a training image is mirrored, [[left, right], ...] (default: the data set's; celebamask-hq's brows, eyes and ears).", Flag = false)]
    public int[][]? MirrorPairs { get; init; }
    [Setting("Validate on the reference's fixed centre crop instead of full images.")]
    public bool ValCrop { get; init; }
    [Setting("Blur half the training images (the reference's RandomGaussianBlur, off in its VOC recipe).", Flag = false)]
    public bool GaussianBlur { get; init; }
    [Setting("Skip unreadable samples (reported) instead of stopping.")]
    public bool SkipBad { get; init; }
    [Setting("Class names for a folder data set, index order.", Flag = false)]
    public string[]? ClassNames { get; init; }
    [Setting("The training split.", Flag = false, Choices = "train|val|trainval|trainaug")]
    public string TrainSplit { get; init; } = "train";
    [Setting("The validation split.", Flag = false, Choices = "train|val|trainval|trainaug")]
    public string ValSplit { get; init; } = "val";

    // Optimisation
    [Setting("Loss (dice is for 2 classes; ohem keeps the hard pixels, as the face-parsing references train).", Choices = "ce|focal|dice|ohem")]
    public string LossType { get; init; } = "ce";
    [Setting("--loss-type ohem: pixels whose true class gets a probability below this are hard.", Above = 0, Below = 1)]
    public double OhemThreshold { get; init; } = 0.7;
    [Setting("--loss-type ohem: at least this many pixels per batch are kept.", Min = 1, Default = "1/16 of the batch's pixels, as the references")]
    public long? OhemMinKept { get; init; }
    /// <summary>The reference divides the (already pixel-averaged) loss by the batch size once more.</summary>
    [Setting("Divide the pixel-averaged loss by the batch size once more, as the reference does.", Flag = false)]
    public bool BatchAverage { get; init; } = true;
    [Setting("Epochs.", Min = 1, Default = "the reference's: 50 for pascal/sbd/folder, 30 for coco, 200 for cityscapes, 10 for synthetic")]
    public int? Epochs { get; init; }
    [Setting("Epoch to start at (--resume sets it from the checkpoint).", Min = 0)]
    public int StartEpoch { get; init; }
    [Setting("Training batch size (per process).", Min = 1)]
    public int BatchSize { get; init; } = 4;
    [Setting("Validation batch size.", Min = 1, Default = "1, since full-size images differ in size")]
    public int? TestBatchSize { get; init; }
    [Setting("Weight classes by 1/ln(1.02 + frequency) over the training masks (cached per data set).")]
    public bool UseBalancedWeights { get; init; }
    [Setting("Base learning rate.", Above = 0, Default = "as the reference: 0.007 (coco 0.1, cityscapes 0.01) x the global batch size / 4")]
    public double? Lr { get; init; }
    [Setting("Learning-rate schedule.", Choices = "poly|step|cos")]
    public string LrScheduler { get; init; } = "poly";
    [Setting("Epochs between 10x decays for --lr-scheduler step.", Min = 0)]
    public int LrStep { get; init; }
    [Setting("Learning-rate warm-up over this many iterations (linear from 0, or exponential with --warmup-start-lr).", Min = 0)]
    public int WarmupIters { get; init; }
    [Setting("Exponential warm-up from this rate to --lr over --warmup-iters, the decay then spanning the rest, as the face-parsing references (1e-5).",
        Above = 0, Default = "none: a linear warm-up")]
    public double? WarmupStartLr { get; init; }
    [Setting("The learning rate of the ASPP and decoder as a multiple of the backbone's (the reference's 10x).", Flag = false, Above = 0)]
    public double HeadLrMultiplier { get; init; } = 10;
    [Setting("SGD momentum.", Min = 0, Below = 1)]
    public double Momentum { get; init; } = 0.9;
    [Setting("SGD weight decay.", Min = 0)]
    public double WeightDecay { get; init; } = 5e-4;
    [Setting("Use Nesterov momentum.")]
    public bool Nesterov { get; init; }
    [Setting("Apply weight decay to BatchNorm weights and to biases too, as the DeepLab reference does (--decay-norm-and-bias false exempts them, as the face-parsing references).")]
    public bool DecayNormAndBias { get; init; } = true;

    // Machine
    [Setting("Train on the CPU even when CUDA is available.")]
    public bool NoCuda { get; init; }
    [Setting("GPU ids, comma separated. On CUDA, several ids start one process per GPU (as --nproc), and each process of an mpirun job takes the id of its rank on the machine.")]
    public string GpuIds { get; init; } = "0";
    [Setting("cpu | cuda | cuda:N.", Default = "cuda:<first gpu id> when available, else cpu")]
    public string? Device { get; init; }
    [Setting("CPU threads for libtorch.", Min = 1, Default = "all cores, shared out among the processes on one machine")]
    public int? Threads { get; init; }
    /// <summary>float32, or bf16: mixed precision (bfloat16 compute over float32 master weights, see Training.MixedPrecision).</summary>
    [Setting("float32 | bf16. bf16 is mixed precision: float32 master weights (updated and saved), bfloat16 convolutions, BatchNorm statistics and the loss in float32.")]
    public string Precision { get; init; } = "float32";
    /// <summary>Store the convolution weights and the input channels-last (NHWC); null: on with bf16 on the CPU, off with float32.</summary>
    [Setting("Store convolution weights and inputs NHWC (--channels-last false turns it off).", Default = "on with --precision bf16 on the CPU, off with float32")]
    public bool? ChannelsLast { get; init; }
    [Setting("Random seed.")]
    public int Seed { get; init; } = 1;

    // Run control
    [Setting("Checkpoint to resume from (ours: weights, optimizer, epoch and the run's recorded config, so nothing else is needed; " +
        "flags given with it override the recorded values; a .pth or safetensors: weights only).")]
    public string? Resume { get; init; }
    /// <summary>Weights to start from (our checkpoint, safetensors or a PyTorch .pth/.pth.tar); the schedule starts at 0.</summary>
    [Setting("ImageNet weights for the backbone, as the reference starts: auto (the reference's file from torch hub's cache, $TORCH_HOME/hub/checkpoints or " +
        "~/.cache/torch/hub/checkpoints), none (random), or a file (torchvision's resnet101/resnet50, the reference's mobilenet_v2, Cadene's xception).",
        Default = "auto for pascal and sbd, none for the others")]
    public string? PretrainedBackbone { get; init; }
    [Setting("Start a new run from these weights: our checkpoint, a safetensors state_dict or a PyTorch .pth/.pth.tar (the reference's or the other port's). " +
        "A different --num-classes re-initialises the classifier; the optimizer and schedule start afresh.")]
    public string? InitWeights { get; init; }
    [Setting("Run name.", Default = "deeplab-<backbone>")]
    public string? Checkname { get; init; }
    [Setting("Fine-tune: with --resume, load the weights only and start at epoch 0.")]
    public bool Ft { get; init; }
    [Setting("Evaluate every N epochs (the last epoch is always evaluated).", Min = 1)]
    public int EvalInterval { get; init; } = 1;
    [Setting("Skip validation.")]
    public bool NoVal { get; init; }
    [Setting("Output folder (with --resume, the checkpoint's folder). A folder holding another run is refused: continue it with --resume or replace it with --overwrite.",
        Default = "checkpoints/<dataset>-<backbone>-<checkname>/")]
    public string? Output { get; init; }
    [Setting("Stop after this many iterations in total (for short runs). The schedule still spans --epochs, and the checkpoint records the batch reached: --resume continues exactly there. " +
        "0 saves the starting weights to last.safetensors and stops (to check what --pretrained-backbone or --init-weights loaded).", Min = 0)]
    public long? MaxIters { get; init; }
    /// <summary>Also write epoch-NNNN.safetensors after every epoch and keep the newest N of them (0: none).</summary>
    [Setting("Also keep periodic checkpoints: epoch-NNNN.safetensors after each epoch, the newest N kept (0: only last and best).", Min = 0)]
    public int Keep { get; init; }
    /// <summary>Stop training after this many seconds of training (evaluation excluded); poly/cos then follow the fraction of it spent.</summary>
    [Setting("Stop training after this many seconds (evaluation excluded); poly/cos follow the time spent. --resume continues the data order, but the budget and its schedule start afresh.", Above = 0)]
    public double? TimeBudget { get; init; }
    /// <summary>Iterations between metrics.jsonl lines and TensorBoard loss points.</summary>
    [Setting("Iterations between metrics.jsonl lines.", Min = 1)]
    public int LogInterval { get; init; } = 10;
    /// <summary>Validation images shown in TensorBoard and the HTML report.</summary>
    [Setting("Validation images shown in TensorBoard and the HTML report.", Flag = false, Min = 0)]
    public int VisImages { get; init; } = 4;
    /// <summary>Stop evaluation after this many validation images (null: the whole split).</summary>
    [Setting("Evaluate on at most this many validation images.", Min = 1)]
    public int? MaxValImages { get; init; }

    /// <summary>Clear the run outputs already in Output before starting (a command-line choice, never recorded).</summary>
    [Setting("Start afresh in an --output folder that holds an earlier run: its run files (checkpoints, metrics.jsonl, tb/, train.log, report.html, config.json) are deleted first; other files stay.")]
    [JsonIgnore] public bool Overwrite { get; init; }

    /// <summary>Base config file (JSON only, one level).</summary>
    [Setting("A config file this one builds on (its keys first, then this file's); one level.", Flag = false)]
    [JsonIgnore] public string? Base { get; init; }
#pragma warning restore CS1591
}
