namespace DeepLabTorch.Torch.Native;

/// <summary>An error raised inside libtorch or the native shim, carrying libtorch's own message.</summary>
public sealed class TorchException : Exception
{
    public TorchException(string message) : base(message) { }
}

internal static unsafe class Errors
{
    /// <summary>Throws the pending native error, or a generic one if the slot is empty.</summary>
    internal static void Throw()
    {
        var message = Take();
        throw new TorchException(message ?? "native call failed without a message");
    }

    /// <summary>Takes the pending native error message of this thread, or null.</summary>
    internal static string? Take()
    {
        int len = NativeMethods.dlt_last_error(null, 0);
        if (len <= 0) return null;
        var buf = new byte[len + 1];
        fixed (byte* p = buf) NativeMethods.dlt_last_error(p, buf.Length);
        // libtorch appends a C++ backtrace to some messages; keep the first paragraph for users.
        var text = System.Text.Encoding.UTF8.GetString(buf, 0, len);
        var cut = text.IndexOf("\nException raised from", StringComparison.Ordinal);
        return cut > 0 ? text[..cut] : text;
    }

    /// <summary>Checks after a call that returns nothing.</summary>
    internal static void Check()
    {
        if (NativeMethods.dlt_last_error(null, 0) > 0) Throw();
    }

    /// <summary>Checks a returned handle: zero means the call failed.</summary>
    internal static IntPtr Check(IntPtr handle)
    {
        if (handle == IntPtr.Zero) Throw();
        return handle;
    }
}
