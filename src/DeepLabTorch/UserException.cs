namespace DeepLabTorch;

/// <summary>
/// A problem the user can fix (bad flag, missing file, wrong config). The CLI prints its message
/// on one line, without a stack trace, and exits with code 2.
/// </summary>
public class UserException : Exception
{
    /// <summary>An error whose <paramref name="message"/> names the file, setting or value at fault.</summary>
    public UserException(string message, Exception? inner = null) : base(message, inner) { }
}
