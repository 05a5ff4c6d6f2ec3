using System.Runtime.InteropServices;

namespace DeepLabTorch.Checkpoints;

/// <summary>
/// Writes a file so that readers only ever see the old or the complete new content: a temporary file
/// in the same folder, flushed and fsynced, renamed over the target, then the folder fsynced so the
/// rename itself survives a power cut.
/// </summary>
internal static class AtomicFile
{
    /// <summary>
    /// Test hook: "pause-before-rename" prints a line to stderr and sleeps (a test kills the process);
    /// "enospc-after-bytes:N" fails like a full disk once N bytes are written.
    /// </summary>
    public const string TestHookVariable = "DEEPLABTORCH_TEST_ATOMIC_HOOK";

    public static void Write(string path, Action<Stream> write)
    {
        var full = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(full) ?? ".";
        if (File.Exists(dir))
            throw new UserException($"cannot write {path}: '{dir}' is a file, not a folder");
        if (!Directory.Exists(dir))
            throw new UserException($"cannot write {path}: the folder '{dir}' does not exist");
        if (Directory.Exists(full))
            throw new UserException($"cannot write {path}: a folder of that name exists");

        var tmp = System.IO.Path.Combine(dir, $".{System.IO.Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        var hook = Environment.GetEnvironmentVariable(TestHookVariable) ?? "";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Stream target = fs;
                if (hook.StartsWith("enospc-after-bytes:", StringComparison.Ordinal))
                    target = new FailingStream(fs, long.Parse(hook["enospc-after-bytes:".Length..], System.Globalization.CultureInfo.InvariantCulture));
                write(target);
                target.Flush();
                fs.Flush(flushToDisk: true);
            }
            if (hook == "pause-before-rename")
            {
                // The test waits for this marker, then kills the process between fsync and rename.
                File.WriteAllText(tmp + ".paused", "");
                Thread.Sleep(TimeSpan.FromMinutes(5));
            }
            File.Move(tmp, full, overwrite: true); // rename(2): atomic on POSIX file systems
            Runtime.PlatformNatives.SyncDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw new UserException($"cannot write {path}: {Describe(e)}; any previous file there is unchanged", e);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>Writes bytes atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    private static string Describe(Exception e)
    {
        const int ENOSPC = 28, EDQUOT = 122;
        int code = e.HResult & 0xFFFF;
        if (e is IOException && (code == ENOSPC || code == EDQUOT || code == 0x70 /* Windows ERROR_DISK_FULL */))
            return "the disk is full (" + e.Message + ")";
        if (e is UnauthorizedAccessException) return "permission denied (" + e.Message + ")";
        return e.Message;
    }

    private static void TryDelete(string tmp)
    {
        try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Simulates a full disk for the tests: throws ENOSPC once the budget is spent.</summary>
    private sealed class FailingStream : Stream
    {
        private readonly Stream _inner;
        private long _left;
        public FailingStream(Stream inner, long budget) { _inner = inner; _left = budget; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _inner.Length;
        public override long Position { get => _inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() => _inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.Length > _left)
            {
                _inner.Write(buffer[..(int)_left]);
                _left = 0;
                throw new IOException("No space left on device", 28);
            }
            _inner.Write(buffer);
            _left -= buffer.Length;
        }
    }
}
