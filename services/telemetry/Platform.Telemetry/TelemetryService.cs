namespace Platform.Telemetry;

public static class TelemetryService
{
    public const string Name = "telemetry";

    public const string Schema = "telemetry";
}
