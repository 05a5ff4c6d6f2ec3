using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Training;

/// <summary>
/// TorchSharp's SGD with the same state, checkpoints and update rule (PyTorch's: d = g + wd·p;
/// b = μ·b + (1 − dampening)·d, or b = d on the first step; d = d + μ·b with Nesterov, else d = b;
/// p −= lr·d), but whose step holds every Scalar it passes to libtorch for the length of the call.
///
/// Why: TorchSharp's own step writes <c>buf.mul_(momentum)</c> and <c>param.add_(grad, alpha: …)</c>,
/// so each call converts a double into a temporary Scalar and passes only its native handle. Nothing
/// references the Scalar during the native call, so a garbage collection started by another thread (the
/// data loader's workers allocate all the time) can queue it for finalization, and the finalizer thread
/// deletes the native Scalar while libtorch is still reading it: a use-after-free that, a few times in
/// a thousand steps, corrupted the glibc heap and aborted training ("corrupted size vs. prev_size",
/// "free(): invalid pointer"). Here the Scalars are locals disposed after the group's loop, so they
/// stay alive until every call that uses them has returned. Tensors need no such care: the step runs
/// in a dispose scope, which references every temporary.
/// </summary>
internal sealed class HeldScalarSgd : SGD
{
    /// <summary>Per parameter group: whether it is a head group (ASPP, decoder, fusion, heads) trained at the head's multiple of the rate. Null: group 0 is the backbone, the rest heads.</summary>
    public IReadOnlyList<bool>? HeadGroups { get; init; }

    public HeldScalarSgd(IEnumerable<ParamGroup> groups, double lr, double momentum, double dampening, double weightDecay, bool nesterov)
        : base(groups, lr, momentum, dampening, weightDecay, nesterov, maximize: false)
    {
    }

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = group.Options;
        double momentum = o.momentum ?? 0, dampening = o.dampening ?? 0, weightDecay = o.weight_decay ?? 0;
        bool nesterov = o.nesterov ?? false, maximize = o.maximize ?? false;
        var lr = o.LearningRate ?? throw new InvalidOperationException("an SGD parameter group has no learning rate");
        using Scalar decay = weightDecay.ToScalar(), mu = momentum.ToScalar(), keep = (1 - dampening).ToScalar(), rate = (maximize ? lr : -lr).ToScalar();
        foreach (var param in group.Parameters)
        {
            var grad = param.grad;
            if (grad is null) continue;
            var state = (State)_state[param.Handle];
            var d = weightDecay != 0 ? grad.add(param, decay) : grad;
            if (momentum != 0)
            {
                var buf = state.momentum_buffer;
                if (buf is null)
                {
                    // Lives across steps: out of the step's dispose scope.
                    buf = d.clone().detach().DetachFromDisposeScope();
                    state.momentum_buffer = buf;
                }
                else
                {
                    buf.mul_(mu).add_(d, keep);
                }
                d = nesterov ? d.add(buf, mu) : buf;
            }
            param.add_(d, rate);
        }
        // The using declaration disposes the Scalars here, after every native call that read them.
    }, closure);
}
