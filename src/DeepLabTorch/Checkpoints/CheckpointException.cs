namespace DeepLabTorch.Checkpoints;

/// <summary>
/// A weight or checkpoint file that cannot be used: corrupt, malicious, truncated, of an unknown
/// kind, or not matching the model. The message names the file and the reason.
/// </summary>
internal sealed class CheckpointException : UserException
{
    public CheckpointException(string path, string reason, Exception? inner = null) : base($"{path}: {reason}", inner)
    {
        Path = path;
        Reason = reason;
    }

    public string Path { get; }
    public string Reason { get; }
}
