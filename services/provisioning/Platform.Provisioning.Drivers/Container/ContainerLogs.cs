namespace Platform.Provisioning.Drivers.Container;

/// <summary>What a container wrote to its standard output and its standard error.</summary>
public sealed record ContainerLogs(string Output, string Errors);
