namespace Platform.HostAgent.Guests;

/// <summary>Limits on what callers do inside machines (<c>Platform:Agent:Guests</c>).</summary>
public sealed class GuestOptions
{
    /// <summary>How much of one process's output the agent keeps for readers (the oldest goes first past it).</summary>
    public long MaxOutputBytesPerProcess { get; set; } = 8 * 1024 * 1024;

    /// <summary>How much of each stream a plain exec answers with; past it the answer says <c>truncated</c>.</summary>
    public int MaxReplyBytesPerStream { get; set; } = 1024 * 1024;

    /// <summary>How many exec'd processes one machine may run at once.</summary>
    public int MaxProcessesPerMachine { get; set; } = 32;

    /// <summary>How long an ended process (its exit code and output) stays readable.</summary>
    public TimeSpan KeepEndedFor { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a command that waits for its answer may run unless the request says otherwise.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The most a request may give a command (a background process included).</summary>
    public TimeSpan MaxTimeout { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How long a machine's logs stay readable on its host after it stopped, exited or was destroyed.</summary>
    public TimeSpan LogRetention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The largest file or archive one request may upload.</summary>
    public long MaxUploadBytes { get; set; } = 1024L * 1024 * 1024;
}
