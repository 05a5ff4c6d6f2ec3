using DeepLabTorch.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace DeepLabTorch.Data;

/// <summary>
/// Decodes, augments and collates samples on plain worker threads with bounded prefetch.
/// Train: a seeded shuffle per epoch, the reference augmentation, the last incomplete batch dropped.
/// Eval: in order, full images (or the fixed center crop with ValCrop), nothing dropped.
/// Every sample's augmentation depends only on (seed, epoch, dataset index), so any number of
/// workers yields the same batches. Images are NCHW float32, masks NHW int64. Training batches are
/// tensors that the workers write into directly (no managed buffer, no copy on the training thread);
/// evaluation batches (full images of any size) are collated from per-sample arrays.
/// </summary>
internal sealed class DataLoader : IDisposable
{
    private readonly ISegmentationDataset _ds;
    private readonly DataOptions _o;
    private readonly bool _train;
    private readonly int _batchSize;
    private int _skipped;
    private readonly List<string> _badSamples = new();
    private readonly ILogger _log;
    private bool _disposed;

    /// <param name="shard">
    /// Training on several processes: this process's share of each epoch. The epoch's shuffled order
    /// is cut into global batches of batchSize × shard.Count, and process k takes the k-th run of
    /// batchSize samples of each, so the processes together see exactly the batches one process with
    /// the global batch size would, and a resumed epoch continues at the same global batch.
    /// </param>
    /// <param name="log">
    /// Where each sample skipped under SkipBad is reported, as a warning (category DeepLabTorch.Data; from a
    /// worker thread). <see cref="BadSamples"/> lists them as well, for a caller that wants them afterwards.
    /// </param>
    public DataLoader(ISegmentationDataset ds, DataOptions o, bool train, int batchSize, DataShard? shard = null, ILogger? log = null)
    {
        o.Validate();
        if (batchSize < 1) throw new UserException($"batch size must be at least 1, got {batchSize}");
        var sh = shard ?? new DataShard(0, 1);
        if (sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count) throw new ArgumentOutOfRangeException(nameof(shard), sh, "shard index must be in [0, count)");
        if (!train && sh.Count > 1) throw new ArgumentException("evaluation shards by data set (ShardedDataset), not by loader", nameof(shard));
        _ds = ds;
        _o = o;
        _train = train;
        _batchSize = batchSize;
        _shard = sh;
        _log = log ?? NullLogger.Instance;
        if (ds.Count == 0) throw new UserException($"{ds.Name} has no images");
        var global = batchSize * sh.Count;
        if (train && ds.Count < global)
            throw new UserException(sh.Count == 1
                ? $"{ds.Name} has {ds.Count} images, fewer than one batch of {batchSize}: lower --batch-size or add data"
                : $"{ds.Name} has {ds.Count} images, fewer than one global batch of {global} ({sh.Count} processes × --batch-size {batchSize}): lower --batch-size or add data");
        BatchesPerEpoch = train ? ds.Count / global : (ds.Count + batchSize - 1) / batchSize;
    }

    private readonly DataShard _shard;

    /// <summary>The dataset indices this process trains on in an epoch, batch after batch.</summary>
    internal int[] TrainOrder(int epoch)
    {
        var all = SampleRandom.Permutation(_ds.Count, _o.Seed, epoch);
        if (_shard.Count == 1) return all;
        var mine = new int[BatchesPerEpoch * _batchSize];
        for (int b = 0; b < BatchesPerEpoch; b++)
            Array.Copy(all, ((long)b * _shard.Count + _shard.Index) * _batchSize, mine, (long)b * _batchSize, _batchSize);
        return mine;
    }

    public int BatchesPerEpoch { get; }
    public int BatchSize => _batchSize;
    /// <summary>Bad samples skipped so far (with SkipBad).</summary>
    public int SkippedSamples => Volatile.Read(ref _skipped);
    /// <summary>The messages of the skipped samples ("file: reason").</summary>
    public IReadOnlyList<string> BadSamples { get { lock (_badSamples) return _badSamples.ToArray(); } }

    /// <summary>
    /// The batches of one epoch, from batch firstBatch on (the earlier ones are neither loaded nor
    /// augmented; the rest are exactly what a full epoch would give). Stop early by disposing the
    /// enumerator (foreach break) or cancelling.
    /// </summary>
    public IEnumerable<Batch> Epoch(int epoch, CancellationToken ct = default, int firstBatch = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (firstBatch < 0 || firstBatch > BatchesPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(firstBatch), $"batch {firstBatch} is outside an epoch of {BatchesPerEpoch} batches");
        var run = new EpochRun(this, epoch, ct, firstBatch);
        try
        {
            run.Start();
            for (int b = firstBatch; b < BatchesPerEpoch; b++)
            {
                var batch = run.Take(b);
                if (batch is not null)
                {
                    batch.Index = b;
                    yield return batch;
                }
            }
        }
        finally
        {
            run.Stop();
        }
    }

    public void Dispose() => _disposed = true;

    /// <summary>The output geometry of one sample.</summary>
    internal AugmentParams ParamsFor(SegmentationSample s, int epoch, int index) =>
        _train ? Transforms.Train(s.Height, s.Width, _o, epoch, index) : Transforms.Val(s.Height, s.Width, _o);

    private sealed class Slot
    {
        public int Remaining;
        public torch.Tensor? Images;     // train: the whole batch, written in place by the workers
        public torch.Tensor? Masks;
        public IntPtr ImagesPtr, MasksPtr;
        public float[]?[] SampleImages = Array.Empty<float[]?>(); // eval: per sample, collated later
        public long[]?[] SampleMasks = Array.Empty<long[]?>();
        public (int H, int W)[] Sizes = Array.Empty<(int, int)>();
        public string?[] Ids = Array.Empty<string?>();
        public bool[] Good = Array.Empty<bool>();
        public Exception? Error;
    }

    /// <summary>One epoch's shared state: work counter, slots, stop flag. All guarded by _gate.</summary>
    private sealed class EpochRun
    {
        private readonly DataLoader _l;
        private readonly int _epoch;
        private readonly CancellationToken _ct;
        private readonly int[] _order;
        private readonly int _total;
        private readonly int _window;
        private readonly object _gate = new();
        private readonly Dictionary<int, Slot> _slots = new();
        private readonly List<Thread> _threads = new();
        private int _next;       // next sample position to claim
        private int _consumed;   // batches handed out
        private bool _stop;
        private CancellationTokenRegistration _reg;

        public EpochRun(DataLoader l, int epoch, CancellationToken ct, int firstBatch = 0)
        {
            _l = l;
            _epoch = epoch;
            _ct = ct;
            _order = l._train ? l.TrainOrder(epoch) : Enumerable.Range(0, l._ds.Count).ToArray();
            _total = l._train ? l.BatchesPerEpoch * l._batchSize : l._ds.Count;
            int workers = Math.Max(1, l._o.Workers);
            _window = Math.Max(l._o.Prefetch, (2 * workers + l._batchSize - 1) / l._batchSize);
            _next = Math.Min(_total, firstBatch * l._batchSize);
            _consumed = firstBatch;
        }

        public void Start()
        {
            _reg = _ct.Register(() => { lock (_gate) { _stop = true; Monitor.PulseAll(_gate); } });
            for (int k = 0; k < _l._o.Workers; k++)
            {
                var t = new Thread(WorkerLoop) { IsBackground = true, Name = $"deeplab-loader-{k}" };
                _threads.Add(t);
                t.Start();
            }
        }

        public void Stop()
        {
            lock (_gate)
            {
                _stop = true;
                Monitor.PulseAll(_gate);
            }
            foreach (var t in _threads) t.Join();
            _reg.Dispose();
            // Batches prefetched but never handed out (an early stop) give their tensors back now.
            foreach (var s in _slots.Values)
            {
                s.Images?.Dispose();
                s.Masks?.Dispose();
            }
            _slots.Clear();
        }

        private int BatchSizeOf(int b) => Math.Min(_l._batchSize, _total - b * _l._batchSize);

        private Slot SlotFor(int b)
        {
            // Under _gate.
            if (_slots.TryGetValue(b, out var s)) return s;
            int n = BatchSizeOf(b);
            s = new Slot { Remaining = n, Ids = new string?[n], Good = new bool[n] };
            if (_l._train)
            {
                long crop = _l._o.CropSize;
                checked { _ = (int)(n * 3 * crop * crop); }
                s.Images = torch.empty(new long[] { n, 3, crop, crop }, torch.ScalarType.Float32);
                s.Masks = torch.empty(new long[] { n, crop, crop }, torch.ScalarType.Int64);
                s.ImagesPtr = s.Images.DataPtr();
                s.MasksPtr = s.Masks.DataPtr();
            }
            else
            {
                s.SampleImages = new float[]?[n];
                s.SampleMasks = new long[]?[n];
                s.Sizes = new (int, int)[n];
            }
            _slots[b] = s;
            return s;
        }

        private void WorkerLoop()
        {
            while (true)
            {
                int i, b;
                Slot slot;
                lock (_gate)
                {
                    while (!_stop && _next < _total && _next / _l._batchSize >= _consumed + _window) Monitor.Wait(_gate);
                    if (_stop || _next >= _total) return;
                    i = _next++;
                    b = i / _l._batchSize;
                    slot = SlotFor(b);
                }
                Process(i, b, slot);
            }
        }

        private unsafe void Process(int i, int b, Slot slot)
        {
            int k = i - b * _l._batchSize;
            int index = _order[i];
            Exception? fatal = null;
            try
            {
                var s = _l._ds.Load(index);
                var p = _l.ParamsFor(s, _epoch, index);
                long px = (long)p.OutHeight * p.OutWidth;
                if (_l._train)
                {
                    // Each worker writes its own sample's part of the batch tensors; the slot keeps them alive.
                    var image = new Span<float>((float*)slot.ImagesPtr + k * 3 * px, (int)(3 * px));
                    var mask = new Span<long>((long*)slot.MasksPtr + k * px, (int)px);
                    Transforms.Apply(s, p, image, mask, _l._o.PadWithMean, _l._o.MirrorPairs);
                }
                else
                {
                    var img = GC.AllocateUninitializedArray<float>(checked((int)(3 * px)));
                    var msk = GC.AllocateUninitializedArray<long>(checked((int)px));
                    Transforms.Apply(s, p, img, msk, _l._o.PadWithMean, _l._o.MirrorPairs);
                    slot.SampleImages[k] = img;
                    slot.SampleMasks[k] = msk;
                    slot.Sizes[k] = (p.OutHeight, p.OutWidth);
                }
                slot.Ids[k] = s.Id;
                slot.Good[k] = true;
            }
            catch (DataException e) when (_l._o.SkipBad)
            {
                Interlocked.Increment(ref _l._skipped);
                lock (_l._badSamples) _l._badSamples.Add(e.Message);
                try { _l._log.LogWarning("skipping bad sample: {File}: {Reason}", e.Path, e.Reason); }
                catch (Exception) { /* a failing logger must not kill the worker */ }
            }
            catch (Exception e)
            {
                fatal = e;
            }
            lock (_gate)
            {
                if (fatal is not null) slot.Error ??= fatal;
                slot.Remaining--;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>Waits for batch b and collates it; null when every sample of it was skipped.</summary>
        public Batch? Take(int b)
        {
            Slot slot;
            if (_l._o.Workers == 0)
            {
                // No workers: load in the calling thread.
                lock (_gate) slot = SlotFor(b);
                for (int i = b * _l._batchSize; i < b * _l._batchSize + BatchSizeOf(b); i++)
                {
                    _ct.ThrowIfCancellationRequested();
                    Process(i, b, slot);
                }
            }
            lock (_gate)
            {
                slot = SlotFor(b);
                while (slot.Remaining > 0 && slot.Error is null && !_ct.IsCancellationRequested) Monitor.Wait(_gate);
                _ct.ThrowIfCancellationRequested();
                _slots.Remove(b);
                _consumed = b + 1;
                Monitor.PulseAll(_gate);
            }
            if (slot.Error is not null)
            {
                slot.Images?.Dispose();
                slot.Masks?.Dispose();
                if (slot.Error is DataException or UserException) throw slot.Error;
                throw new InvalidOperationException($"data loader worker failed: {slot.Error.Message}", slot.Error);
            }
            return _l._train ? CollateTrain(slot) : CollateEval(slot, b);
        }

        private Batch? CollateTrain(Slot slot)
        {
            int n = slot.Good.Length, good = slot.Good.Count(g => g);
            var images = slot.Images!;
            var masks = slot.Masks!;
            // BatchNorm cannot train on one sample: a batch skipped down to 0 or 1 is dropped.
            if (good < Math.Min(2, n))
            {
                images.Dispose();
                masks.Dispose();
                return null;
            }
            var ids = slot.Ids.Where((_, k) => slot.Good[k]).Select(id => id!).ToArray();
            if (good == n) return new Batch(images, masks, ids);
            // --skip-bad dropped samples: keep the good ones (a copy, only for such a batch).
            using (images)
            using (masks)
            using (var keep = torch.tensor(Enumerable.Range(0, n).Where(k => slot.Good[k]).Select(k => (long)k).ToArray()))
            {
                var ci = images.index_select(0, keep);
                try { return new Batch(ci, masks.index_select(0, keep), ids); }
                catch { ci.Dispose(); throw; }
            }
        }

        private Batch? CollateEval(Slot slot, int b)
        {
            var keep = Enumerable.Range(0, slot.Good.Length).Where(k => slot.Good[k]).ToArray();
            if (keep.Length == 0) return null;
            var (h, w) = slot.Sizes[keep[0]];
            var ids = keep.Select(k => slot.Ids[k]!).ToArray();
            if (keep.Length == 1) return MakeBatch(slot.SampleImages[keep[0]]!, slot.SampleMasks[keep[0]]!, 1, h, w, ids);
            foreach (var k in keep)
                if (slot.Sizes[k] != (h, w))
                    throw new UserException($"evaluation batch {b}: images {ids[0]} ({w}x{h}) and {slot.Ids[k]} ({slot.Sizes[k].W}x{slot.Sizes[k].H}) " +
                                            "differ in size; evaluate full images with batch size 1, or use --val-crop");
            long px = (long)h * w;
            var images = GC.AllocateUninitializedArray<float>((int)(keep.Length * 3 * px));
            var masks = GC.AllocateUninitializedArray<long>((int)(keep.Length * px));
            for (int j = 0; j < keep.Length; j++)
            {
                Array.Copy(slot.SampleImages[keep[j]]!, 0, images, j * 3 * px, 3 * px);
                Array.Copy(slot.SampleMasks[keep[j]]!, 0, masks, j * px, px);
            }
            return MakeBatch(images, masks, keep.Length, h, w, ids);
        }

        private static Batch MakeBatch(float[] images, long[] masks, int n, int h, int w, string[] ids)
        {
            var ti = TensorExtensions.FromArray(images, new long[] { n, 3, h, w });
            try
            {
                var tm = TensorExtensions.FromArray(masks, new long[] { n, h, w });
                return new Batch(ti, tm, ids);
            }
            catch
            {
                ti.Dispose();
                throw;
            }
        }
    }
}

/// <summary>Process Index of Count in a data-parallel run.</summary>
internal readonly record struct DataShard(int Index, int Count);

/// <summary>
/// A contiguous block of another data set: process k of n evaluates the k-th of n nearly equal
/// blocks of the first `limit` images, so the blocks together are the split (or its first --max-val-images).
/// </summary>
internal sealed class ShardedDataset : ISegmentationDataset
{
    private readonly ISegmentationDataset _inner;
    private readonly int _start;

    private ShardedDataset(ISegmentationDataset inner, int start, int count)
    {
        _inner = inner;
        _start = start;
        Count = count;
    }

    public static ISegmentationDataset Block(ISegmentationDataset inner, int index, int count, int? limit = null)
    {
        if (count < 1 || index < 0 || index >= count) throw new ArgumentOutOfRangeException(nameof(index), index, $"shard index must be in [0, {count})");
        var n = Math.Min(inner.Count, limit ?? int.MaxValue);
        if (count == 1 && n == inner.Count) return inner;
        var start = (int)((long)n * index / count);
        var end = (int)((long)n * (index + 1) / count);
        return new ShardedDataset(inner, start, end - start);
    }

    public string Name => _inner.Name;
    public int Count { get; }
    public IReadOnlyList<string> ClassNames => _inner.ClassNames;
    public int NumClasses => _inner.NumClasses;
    public int IgnoreIndex => _inner.IgnoreIndex;
    public SegmentationSample Load(int index) => _inner.Load(_start + index);
}
