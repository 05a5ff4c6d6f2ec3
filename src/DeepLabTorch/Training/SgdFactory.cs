using DeepLabTorch.Models;
using TorchSharp;
using TorchSharp.Modules;

namespace DeepLabTorch.Training;

/// <summary>
/// The reference's SGD: one group per SegmentationModel.ParameterGroups entry (backbone at lr, head at
/// 10 × lr), each with the same momentum, weight decay and Nesterov flag. Every group gets full
/// SGD.Options: TorchSharp's SGD.ParamGroup(params, lr) form silently sets momentum and weight decay
/// to 0. The optimizer is HeldScalarSgd (TorchSharp's SGD without its Scalar use-after-free). Build it after the model is on its device: Module.to replaces Parameter objects.
/// </summary>
public static class SgdFactory
{
    public static SGD Create(SegmentationModel model, double lr, double momentum, double weightDecay, bool nesterov = false, double? headMultiplier = null)
    {
        var groups = model.ParameterGroups()
            .Select(g => new SGD.ParamGroup(g.Parameters, new SGD.Options
            {
                LearningRate = lr * (g.LearningRateMultiplier == 1.0 ? 1.0 : headMultiplier ?? g.LearningRateMultiplier),
                momentum = momentum,
                dampening = 0,
                weight_decay = weightDecay,
                nesterov = nesterov,
                maximize = false,
            }))
            .ToList();
        return new HeldScalarSgd(groups, lr, momentum, 0, weightDecay, nesterov);
    }
}
