using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DeepLabTorch.Checkpoints;

/// <summary>
/// TorchSharp keeps optimizer state in per-parameter objects; our checkpoints store it flat, in
/// PyTorch's numbering (parameters counted across groups): tensors "state.{i}.momentum_buffer" (SGD),
/// "state.{i}.exp_avg" / "exp_avg_sq" (Adam, AdamW), and scalars "state.{i}.step",
/// "param_groups.{g}.lr" and "param_groups.{g}.initial_lr". Loading copies values into the optimizer's
/// own state, so a resumed run continues bitwise.
/// </summary>
internal static class OptimizerState
{
    /// <summary>The optimizer's state tensors (its own: do not dispose) and scalars, by our flat names.</summary>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, double> Scalars) Save(optim.Optimizer optimizer)
    {
        var tensors = new Dictionary<string, Tensor>();
        var scalars = new Dictionary<string, double>();
        var sd = Helper(optimizer).state_dict();
        for (int i = 0; i < sd.State.Count; i++)
        {
            switch (sd.State[i])
            {
                case SGD.State s:
                    if (s.momentum_buffer is not null) tensors[$"state.{i}.momentum_buffer"] = s.momentum_buffer;
                    break;
                case Adam.State a:
                    AddAdam(tensors, scalars, i, a.step, a.exp_avg, a.exp_avg_sq);
                    break;
                case AdamW.State w:
                    AddAdam(tensors, scalars, i, w.step, w.exp_avg, w.exp_avg_sq);
                    break;
                default:
                    throw new NotSupportedException($"checkpoints cannot store the state of {optimizer.GetType().Name}");
            }
        }
        int g = 0;
        foreach (var group in optimizer.ParamGroups)
        {
            scalars[$"param_groups.{g}.lr"] = group.LearningRate;
            scalars[$"param_groups.{g}.initial_lr"] = group.InitialLearningRate;
            g++;
        }
        return (tensors, scalars);
    }

    private static void AddAdam(Dictionary<string, Tensor> tensors, Dictionary<string, double> scalars, int i, long step, Tensor? m, Tensor? v)
    {
        if (step == 0) return; // never stepped: PyTorch has no state for it either
        scalars[$"state.{i}.step"] = step;
        if (m is not null) tensors[$"state.{i}.exp_avg"] = m;
        if (v is not null) tensors[$"state.{i}.exp_avg_sq"] = v;
    }

    /// <summary>Restores what Save wrote. Keys that fit no parameter, or shapes that differ, throw ArgumentException naming them.</summary>
    public static void Load(optim.Optimizer optimizer, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, double> scalars)
    {
        var states = Helper(optimizer).state_dict().State;
        var groups = optimizer.ParamGroups.ToList();
        foreach (var (key, t) in tensors)
        {
            var (i, name) = ParseStateKey(key, states.Count);
            var param = Parameter(states[i]);
            if (!t.shape.SequenceEqual(param.shape))
                throw new ArgumentException($"optimizer state '{key}' has shape [{string.Join(",", t.shape)}], its parameter has [{string.Join(",", param.shape)}]");
            var copy = t.to(param.dtype, param.device, copy: true).DetachFromDisposeScope();
            SetTensor(states[i], name, copy, key);
        }
        foreach (var (key, v) in scalars)
        {
            var parts = key.Split('.');
            if (parts is ["state", _, "step"])
            {
                var (i, _) = ParseStateKey(key, states.Count);
                SetStep(states[i], (long)v, key);
            }
            else if (parts is ["param_groups", var gs, var what] && int.TryParse(gs, NumberStyles.None, CultureInfo.InvariantCulture, out var g) && g < groups.Count)
            {
                if (what == "lr") groups[g].LearningRate = v;
                else if (what == "initial_lr") groups[g].InitialLearningRate = v;
                else throw new ArgumentException($"unknown optimizer state scalar '{key}'");
            }
            else throw new ArgumentException($"unknown optimizer state scalar '{key}'");
        }
    }

    private static OptimizerHelper Helper(optim.Optimizer optimizer) =>
        optimizer as OptimizerHelper ?? throw new NotSupportedException($"checkpoints cannot store the state of {optimizer.GetType().Name}");

    private static (int Index, string Name) ParseStateKey(string key, int count)
    {
        var parts = key.Split('.', 3);
        if (parts.Length != 3 || parts[0] != "state" || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var i) || i >= count)
            throw new ArgumentException($"optimizer state key '{key}' does not match this optimizer's {count} parameters");
        return (i, parts[2]);
    }

    private static Parameter Parameter(TorchSharp.Modules.OptimizerState s) =>
        s is SGD.State or Adam.State or AdamW.State ? Param(s) : throw new NotSupportedException($"unsupported optimizer state {s.GetType().Name}");

    // OptimizerState keeps its parameter in a protected field: found once by reflection.
    private static readonly System.Reflection.FieldInfo ParameterField =
        typeof(TorchSharp.Modules.OptimizerState).GetField("_parameter", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)
        ?? throw new MissingFieldException("TorchSharp's OptimizerState has no _parameter field: update Checkpoints/OptimizerState for this TorchSharp version");

    private static Parameter Param(TorchSharp.Modules.OptimizerState s) => (Parameter)ParameterField.GetValue(s)!;

    private static void SetTensor(TorchSharp.Modules.OptimizerState s, string name, Tensor value, string key)
    {
        switch (s, name)
        {
            case (SGD.State x, "momentum_buffer"): x.momentum_buffer?.Dispose(); x.momentum_buffer = value; break;
            case (Adam.State x, "exp_avg"): x.exp_avg?.Dispose(); x.exp_avg = value; break;
            case (Adam.State x, "exp_avg_sq"): x.exp_avg_sq?.Dispose(); x.exp_avg_sq = value; break;
            case (AdamW.State x, "exp_avg"): x.exp_avg?.Dispose(); x.exp_avg = value; break;
            case (AdamW.State x, "exp_avg_sq"): x.exp_avg_sq?.Dispose(); x.exp_avg_sq = value; break;
            default:
                value.Dispose();
                throw new ArgumentException($"optimizer state key '{key}' does not belong to {s.GetType().DeclaringType?.Name ?? s.GetType().Name}");
        }
    }

    private static void SetStep(TorchSharp.Modules.OptimizerState s, long step, string key)
    {
        switch (s)
        {
            case Adam.State x: x.step = step; break;
            case AdamW.State x: x.step = step; break;
            default: throw new ArgumentException($"optimizer state scalar '{key}' does not belong to {s.GetType().DeclaringType?.Name ?? s.GetType().Name}");
        }
    }
}
