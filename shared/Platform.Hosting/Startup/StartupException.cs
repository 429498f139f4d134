namespace Platform.Hosting.Startup;

/// <summary>The service cannot start; the message says why in one line, for the operator.</summary>
public sealed class StartupException(string message) : Exception(message);
