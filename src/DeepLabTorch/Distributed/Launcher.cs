using System.Globalization;

namespace DeepLabTorch.Distributed;

/// <summary>
/// How this process was started: alone, or as one rank of an MPI job (mpirun, or Slurm's srun with
/// PMIx), read from the variables the launchers set. MPI is initialised only for a launched process,
/// so a plain run needs no MPI library.
/// </summary>
internal static class Launcher
{
    /// <summary>The variables that mark a process started by an MPI launcher.</summary>
    private static readonly string[] MpiVariables = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE" };

    /// <summary>True when an MPI launcher started this process.</summary>
    public static bool UnderMpi(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        return MpiVariables.Any(v => !string.IsNullOrEmpty(env(v)));
    }

    /// <summary>The process count the launcher announced (Open MPI's mpirun, or the Slurm step), when it did.</summary>
    public static int? AnnouncedSize(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        foreach (var v in new[] { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS" })
            if (int.TryParse(env(v), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0) return n;
        return null;
    }

    /// <summary>
    /// srun started several tasks but gave them no MPI rendezvous: each would train alone, all into the
    /// same folder. The message says how to start them instead; null when that is not the case.
    /// </summary>
    public static string? SrunWithoutMpi(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        if (UnderMpi(env) || string.IsNullOrEmpty(env("SLURM_PROCID"))) return null;
        if (!int.TryParse(env("SLURM_STEP_NUM_TASKS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 2) return null;
        return $"srun started {n} tasks without MPI's PMIx rendezvous, so each would train alone: use `srun --mpi=pmix ...` " +
               "(Open MPI built with PMIx, as Debian's is) or `mpirun ...` inside the allocation (docs/distributed.md)";
    }

    /// <summary>
    /// The process group of this process: Single for a plain run; otherwise MPI is initialised (the
    /// error names the install command when Open MPI is missing) and the world it reports must be the
    /// one the launcher announced.
    /// </summary>
    public static ProcessGroup Join()
    {
        if (SrunWithoutMpi() is { } why) throw new UserException(why);
        if (!UnderMpi()) return ProcessGroup.Single;
        var group = MpiProcessGroup.Initialize();
        if (AnnouncedSize() is { } announced && announced != group.Size)
        {
            var size = group.Size;
            group.Dispose();
            throw new UserException($"the launcher started {announced} processes, but MPI sees a world of {size}: " +
                "the launcher and the library are not the same MPI (DeepLabTorch uses Open MPI's libmpi.so.40; start it with Open MPI's mpirun)");
        }
        return group;
    }
}
