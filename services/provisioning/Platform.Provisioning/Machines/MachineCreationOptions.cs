using Platform.Hosting.Startup;

namespace Platform.Provisioning.Machines;

/// <summary>How many creations wait for their placement turn, and how long, section <c>Platform:Provisioning:Creation</c>.</summary>
public sealed class MachineCreationOptions
{
    public const string Section = "Platform:Provisioning:Creation";

    /// <summary>Creations waiting for their turn (or placing) in this instance; one more is refused at once.</summary>
    public int MaxQueued { get; set; } = 256;

    /// <summary>How long a creation waits for its turn before it is refused.</summary>
    public TimeSpan MaxQueueWait { get; set; } = TimeSpan.FromSeconds(10);

    public static MachineCreationOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(Section).Get<MachineCreationOptions>() ?? new MachineCreationOptions();
        if (options.MaxQueued is < 1 or > 100_000)
        {
            throw new StartupException($"{Section}:MaxQueued must be between 1 and 100000, not {options.MaxQueued}.");
        }

        if (options.MaxQueueWait <= TimeSpan.Zero || options.MaxQueueWait > TimeSpan.FromMinutes(5))
        {
            throw new StartupException($"{Section}:MaxQueueWait must be positive and at most 5 minutes.");
        }

        return options;
    }
}
