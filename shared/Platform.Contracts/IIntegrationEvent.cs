namespace Platform.Contracts;

/// <summary>
/// Marks a published fact (as opposed to a command). Every event is also routed to this type's exchange,
/// <c>Platform.Contracts:IIntegrationEvent</c>, so one queue bound there sees every event of every service:
/// that is how telemetry builds the audit log, and how an external system can follow everything.
/// </summary>
public interface IIntegrationEvent;
