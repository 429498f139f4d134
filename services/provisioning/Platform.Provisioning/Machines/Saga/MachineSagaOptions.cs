using Platform.Hosting.Startup;

namespace Platform.Provisioning.Machines.Saga;

/// <summary>The machine saga's deadlines, section <c>Platform:Provisioning:Saga</c>.</summary>
public sealed class MachineSagaOptions
{
    public const string Section = "Platform:Provisioning:Saga";

    /// <summary>How long a step waits for its answer before its command is issued again (the launch has its own).</summary>
    public TimeSpan StepTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a launch may take: a micro-VM's cold boot under emulation takes seconds, more on a busy host.</summary>
    public TimeSpan LaunchTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How many times a creation step's command is issued before the creation fails (steps that give back are issued until answered).</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>How often the sweeper looks for overdue steps.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan TimeoutOf(string step, int attempt)
    {
        var timeout = step == MachineSteps.Launch ? LaunchTimeout : StepTimeout;
        // Each issue waits longer than the one before (a busy or restarting service gets room), at most four times as long.
        return timeout * Math.Min(attempt, 4);
    }

    public static MachineSagaOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(Section).Get<MachineSagaOptions>() ?? new MachineSagaOptions();
        if (options.StepTimeout <= TimeSpan.Zero || options.LaunchTimeout <= TimeSpan.Zero || options.SweepInterval <= TimeSpan.Zero)
        {
            throw new StartupException($"{Section}: StepTimeout, LaunchTimeout and SweepInterval must be positive.");
        }

        if (options.MaxAttempts is < 1 or > 100)
        {
            throw new StartupException($"{Section}:MaxAttempts must be between 1 and 100, not {options.MaxAttempts}.");
        }

        return options;
    }
}

/// <summary>The steps of the machine saga, as <see cref="Platform.Contracts.Provisioning.MachineStepCompleted"/> names them.</summary>
public static class MachineSteps
{
    public const string Quota = "quota";
    public const string Network = "network";
    public const string Launch = "launch";
    public const string Tunnel = "tunnel";
    public const string Registration = "registration";
    public const string Unregister = "unregister";
    public const string DetachTunnel = "detach-tunnel";
    public const string TearDown = "tear-down";
    public const string ReleaseNetwork = "release-network";
    public const string ReleaseQuota = "release-quota";

    /// <summary>The step that gives back what a creation step took.</summary>
    public static string ReleaseOf(string taken) => taken switch
    {
        Registration => Unregister,
        Tunnel => DetachTunnel,
        Launch => TearDown,
        Network => ReleaseNetwork,
        Quota => ReleaseQuota,
        _ => throw new ArgumentOutOfRangeException(nameof(taken), taken, "not a creation step"),
    };

    public static string TakenBy(string release) => release switch
    {
        Unregister => Registration,
        DetachTunnel => Tunnel,
        TearDown => Launch,
        ReleaseNetwork => Network,
        ReleaseQuota => Quota,
        _ => throw new ArgumentOutOfRangeException(nameof(release), release, "not a release step"),
    };

    public static bool IsCreation(string step) => step is Quota or Network or Launch or Tunnel or Registration;
}
