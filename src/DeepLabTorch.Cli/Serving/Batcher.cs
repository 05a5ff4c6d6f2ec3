using System.Diagnostics;
using System.Threading.Channels;
using DeepLabTorch.Inference;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DeepLabTorch.Cli.Serving;

/// <summary>The queue was full when a request arrived (503 with Retry-After).</summary>
internal sealed class QueueFullException : Exception
{
    public QueueFullException(int length) : base($"the server is busy: all {length} places in its queue are taken; retry shortly") { }
}

/// <summary>
/// Micro-batching: requests wait in one bounded queue; a single inference thread takes the oldest, gathers
/// up to <c>maxBatch</c> more of the same image size that arrive within <c>maxWait</c>, runs them as one
/// forward pass, and finishes each request's own output from its slice of the logits. Images of another size
/// wait for the next batch (no padding, so a batched answer is the unbatched one). All libtorch work happens
/// on that thread: the one that calls <see cref="Run"/>, which `deeplab serve` makes its main thread. There glibc's
/// malloc serves libtorch from its main arena, whose freed blocks NativeHeap keeps for reuse; a thread of its own
/// gets another arena, which cannot hold a block above 64 MB and maps each one afresh, so a batch of eight 513²
/// images (177 MB of logits) paid ~32,000 page faults per image, against ~2,500 in predict, and ran at 0.8-0.9 of
/// predict's batched rate. The model now runs as predict's does, libgomp's spinning included: on a machine that
/// other processes load, GOMP_SPINCOUNT=1000 (or OMP_WAIT_POLICY=PASSIVE) helps both (docs/performance.md, "Serving").
/// </summary>
internal sealed class Batcher : IDisposable
{
    /// <summary>One request: the image [1,3,H,W] in [0,1] and what to make of its logits [1,C,H,W].</summary>
    private sealed class Job(byte[] rgb, int height, int width, Func<Tensor, Tensor, object> finish, DateTime deadline)
    {
        public byte[] Rgb { get; } = rgb;
        public int Height { get; } = height;
        public int Width { get; } = width;
        public Func<Tensor, Tensor, object> Finish { get; } = finish;
        public DateTime Deadline { get; } = deadline;
        public TaskCompletionSource<object> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public DateTime Enqueued { get; } = DateTime.UtcNow;
        public int Abandoned;
        public double QueueMs;
    }

    private readonly Predictor _predictor;
    private readonly Channel<Job> _queue;
    private readonly int _capacity;
    private readonly int _maxBatch;
    private readonly TimeSpan _maxWait;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _log;
    private Job? _carried;

    public Batcher(Predictor predictor, int maxBatch, TimeSpan maxWait, int queue, ServerMetrics metrics, ILogger log)
    {
        _predictor = predictor;
        _maxBatch = maxBatch;
        _maxWait = maxWait;
        _capacity = queue;
        _metrics = metrics;
        _log = log;
        _queue = Channel.CreateBounded<Job>(new BoundedChannelOptions(queue) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Requests waiting, not counting the batch being run.</summary>
    public int Depth => _queue.Reader.Count + (_carried is null ? 0 : 1);

    /// <summary>
    /// Queues an image and waits for its result: <paramref name="finish"/>(logits [1,C,H,W], image01 [1,3,H,W]) runs on
    /// the inference thread (the caller of <see cref="Run"/>) inside a dispose scope and returns plain .NET data.
    /// </summary>
    /// <exception cref="QueueFullException">The queue is full.</exception>
    /// <exception cref="TimeoutException">The result did not come within the timeout.</exception>
    public async Task<(T Result, double QueueMs, double TotalMs)> RunAsync<T>(byte[] rgb, int height, int width, Func<Tensor, Tensor, T> finish, TimeSpan timeout, CancellationToken ct)
        where T : notnull
    {
        var job = new Job(rgb, height, width, (logits, image) => finish(logits, image), DateTime.UtcNow + timeout);
        if (!_queue.Writer.TryWrite(job)) throw new QueueFullException(_capacity);
        _metrics.QueueDepth(Depth);
        try
        {
            var result = await job.Done.Task.WaitAsync(timeout, ct);
            var total = (DateTime.UtcNow - job.Enqueued).TotalMilliseconds;
            return ((T)result, job.QueueMs, total);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            Interlocked.Exchange(ref job.Abandoned, 1);
            throw;
        }
    }

    /// <summary>
    /// Runs batches on the calling thread until <see cref="Complete"/> has been called and the queue is empty.
    /// </summary>
    public void Run()
    {
        var reader = _queue.Reader;
        while (true)
        {
            var first = _carried ?? Next(reader, Timeout.InfiniteTimeSpan);
            _carried = null;
            if (first is null) return;   // the queue was closed and is empty
            var batch = new List<Job> { first };
            var until = DateTime.UtcNow + _maxWait;
            while (batch.Count < _maxBatch)
            {
                var left = until - DateTime.UtcNow;
                if (left <= TimeSpan.Zero && reader.Count == 0) break;
                var next = Next(reader, left > TimeSpan.Zero ? left : TimeSpan.Zero);
                if (next is null) break;
                if (next.Height == first.Height && next.Width == first.Width) batch.Add(next);
                else
                {
                    _carried = next;
                    break;
                }
            }
            _metrics.QueueDepth(Depth);
            RunBatch(batch);
        }
    }

    /// <summary>The next job within <paramref name="wait"/>, or null (none came, or the queue is closed and empty).</summary>
    private static Job? Next(ChannelReader<Job> reader, TimeSpan wait)
    {
        if (reader.TryRead(out var job)) return job;
        if (wait == TimeSpan.Zero) return null;
        using var cts = wait == Timeout.InfiniteTimeSpan ? new CancellationTokenSource() : new CancellationTokenSource(wait);
        try
        {
            if (!reader.WaitToReadAsync(cts.Token).AsTask().GetAwaiter().GetResult()) return null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        return reader.TryRead(out job) ? job : null;
    }

    private void RunBatch(List<Job> batch)
    {
        var now = DateTime.UtcNow;
        var live = new List<Job>(batch.Count);
        foreach (var job in batch)
        {
            if (job.Abandoned != 0 || now > job.Deadline) job.Done.TrySetException(new TimeoutException("the request timed out in the queue"));
            else
            {
                job.QueueMs = (now - job.Enqueued).TotalMilliseconds;
                live.Add(job);
            }
        }
        if (live.Count == 0) return;
        var clock = Stopwatch.StartNew();
        try
        {
            using var scope = NewDisposeScope();
            var images = live.Select(j => RgbTensors.FromBytes(j.Rgb, j.Height, j.Width)).ToArray();
            var batchImages = images.Length == 1 ? images[0] : cat(images, 0);
            var logits = _predictor.Logits(RgbTensors.Normalize(batchImages));
            for (int i = 0; i < live.Count; i++)
            {
                try
                {
                    using var itemScope = NewDisposeScope();
                    live[i].Done.TrySetResult(live[i].Finish(logits.narrow(0, i, 1), images[i]));
                }
                catch (Exception e)
                {
                    live[i].Done.TrySetException(e);
                }
            }
        }
        catch (Exception e)
        {
            _log.LogError("a batch of {Count} failed: {Message}", live.Count, e.Message);
            foreach (var job in live) job.Done.TrySetException(e);
        }
        _metrics.Batch(live.Count, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Stops taking requests; <see cref="Run"/> finishes those queued and returns.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    public void Dispose() => Complete();
}
