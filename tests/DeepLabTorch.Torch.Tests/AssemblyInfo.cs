using Xunit;

// Several tests compare Tensor.LiveCount before and after; the count is process-wide, so tests in
// this (fast) assembly run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
