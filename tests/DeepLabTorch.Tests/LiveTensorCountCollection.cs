using Xunit;

namespace DeepLabTorch.Tests;

/// <summary>
/// Tests that compare the process-wide Tensor.LiveCount belong to this collection: it runs alone,
/// after the parallel tests, so no other test's tensors change the count mid-test.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LiveTensorCountCollection
{
    public const string Name = "LiveTensorCount";
}
