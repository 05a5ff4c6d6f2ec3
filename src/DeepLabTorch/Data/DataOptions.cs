namespace DeepLabTorch.Data;

/// <summary>Where the data is and how it is read and augmented. Flat, immutable, JSON-friendly.</summary>
internal sealed record DataOptions
{
    /// <summary>pascal | sbd | folder | synthetic | celebamask-hq | cityscapes | coco.</summary>
    public string Dataset { get; init; } = "pascal";
    /// <summary>The data set's root folder (see data/README.md for each layout). Synthetic: null = data/synthetic.</summary>
    public string? DataRoot { get; init; }
    /// <summary>With pascal: the train split becomes trainaug (VOC train + SBD train/val − VOC val).</summary>
    public bool UseSbd { get; init; }
    /// <summary>SBD's dataset folder (holding cls/, img/); null = searched near DataRoot.</summary>
    public string? SbdRoot { get; init; }
    public int BaseSize { get; init; } = 513;
    public int CropSize { get; init; } = 513;
    public int Workers { get; init; } = 4;
    public int Seed { get; init; } = 1;
    /// <summary>Evaluate on the reference's fixed-scale center crop instead of the full image.</summary>
    public bool ValCrop { get; init; }
    /// <summary>Skip and count bad samples instead of stopping.</summary>
    public bool SkipBad { get; init; }
    public bool GaussianBlur { get; init; }
    /// <summary>Class names; null = the data set's own (VOC's 21; folder: background, person).</summary>
    public string[]? ClassNames { get; init; }
    /// <summary>The mask value that means "ignore" in the files; read as 255.</summary>
    public int IgnoreValue { get; init; } = 255;
    /// <summary>Batches each worker may run ahead of the consumer (bounded prefetch).</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>Pad the image with the ImageNet mean instead of black (the reference pads with 0).</summary>
    public bool PadWithMean { get; init; }
    /// <summary>Colour jitter strength s: brightness, contrast and saturation factors in [1 - s, 1 + s] (0: off).</summary>
    public double ColorJitter { get; init; }
    /// <summary>Labels that trade places when a training image is mirrored (null: the data set's own, none for most).</summary>
    public IReadOnlyList<(byte Left, byte Right)>? MirrorPairs { get; init; }
    /// <summary>Scale range of the random rescale, as fractions of BaseSize.</summary>
    public double MinScale { get; init; } = 0.5;
    public double MaxScale { get; init; } = 2.0;

    /// <summary>Checks the numbers; throws UserException naming the bad option.</summary>
    public void Validate()
    {
        if (Dataset is not ("pascal" or "sbd" or "folder" or "synthetic" or CelebAMaskHq.Name or Cityscapes.Name or Coco.Name))
            throw new UserException($"unknown dataset '{Dataset}' (expected pascal, sbd, folder, synthetic, {CelebAMaskHq.Name}, {Cityscapes.Name} or {Coco.Name})");
        if (!(ColorJitter >= 0 && ColorJitter <= 1)) throw new UserException($"colour jitter must be in [0, 1], got {ColorJitter}");
        if (BaseSize < 8) throw new UserException($"base size {BaseSize} is too small (at least 8)");
        if (CropSize < 8) throw new UserException($"crop size {CropSize} is too small (at least 8)");
        if (Workers < 0 || Workers > 64) throw new UserException($"workers must be 0-64, got {Workers}");
        if (Prefetch < 1) throw new UserException("prefetch must be at least 1");
        if (IgnoreValue is < 0 or > 255) throw new UserException($"ignore value {IgnoreValue} must be 0-255");
        if (!(MinScale > 0 && MaxScale >= MinScale)) throw new UserException($"bad scale range [{MinScale}, {MaxScale}]");
        if (ClassNames is { Length: < 2 or > 255 }) throw new UserException("class names: give 2 to 255 names");
    }
}
