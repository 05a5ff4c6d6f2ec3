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
internal static class SgdFactory
{
    /// <param name="decayNormAndBias">False: BatchNorm weights and biases and every bias (the one-dimensional parameters)
    /// get no weight decay, as the face-parsing references train; each group then splits in two.</param>
    public static SGD Create(SegmentationModel model, double lr, double momentum, double weightDecay, bool nesterov = false, double? headMultiplier = null,
        bool decayNormAndBias = true)
    {
        var groups = new List<SGD.ParamGroup>();
        var heads = new List<bool>();
        foreach (var g in model.ParameterGroups())
        {
            bool head = g.LearningRateMultiplier != 1.0;
            var rate = lr * (head ? headMultiplier ?? g.LearningRateMultiplier : 1.0);
            var parts = decayNormAndBias
                ? new[] { (g.Parameters, weightDecay) }
                : new[] { ((IReadOnlyList<Parameter>)g.Parameters.Where(p => p.dim() > 1).ToList(), weightDecay), (g.Parameters.Where(p => p.dim() <= 1).ToList(), 0.0) };
            foreach (var (parameters, decay) in parts)
            {
                if (parameters.Count == 0) continue;
                groups.Add(new SGD.ParamGroup(parameters, new SGD.Options
                {
                    LearningRate = rate,
                    momentum = momentum,
                    dampening = 0,
                    weight_decay = decay,
                    nesterov = nesterov,
                    maximize = false,
                }));
                heads.Add(head);
            }
        }
        return new HeldScalarSgd(groups, lr, momentum, 0, weightDecay, nesterov) { HeadGroups = heads };
    }
}
