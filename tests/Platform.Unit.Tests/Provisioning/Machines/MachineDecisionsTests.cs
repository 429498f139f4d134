using Platform.Contracts.Provisioning;
using Platform.Provisioning.Machines;

namespace Platform.Unit.Tests.Provisioning.Machines;

/// <summary>Given a machine's events, when a user asks for something or its process ends, then what the machine records.</summary>
public sealed class MachineDecisionsTests
{
    private static readonly Guid Id = Guid.CreateVersion7();
    private static readonly Guid Tenant = Guid.CreateVersion7();
    private static readonly Guid Host = Guid.CreateVersion7();
    private static readonly Guid Creation = Guid.CreateVersion7();
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private static readonly MachineRequested Requested = new(Id, Tenant, Creation, "m", "sandbox", "sandbox", Host, new TemplateRef("sandbox-host", "abc"),
        new MachineShape(1, 64, 0), new Dictionary<string, string>(), null, "auto", Now);

    private static Machine Given(params object[] events) => events.Aggregate((Machine?)null, Machine.Evolve)!;

    private static MachineRunning Running(Guid operation) => new(Id, Tenant, operation, Host, null, null, "cold", 12.5, Now);

    [Fact]
    public void A_running_machine_can_be_stopped_restarted_recreated_and_destroyed_and_each_request_names_its_operation()
    {
        var machine = Given(Requested, Running(Creation));
        var operation = Guid.CreateVersion7();

        Assert.Equal(new MachineStopRequested(Id, Tenant, operation, Now), machine.Decide("stop", operation, Now));
        Assert.Equal(new MachineRestartRequested(Id, Tenant, operation, Now), machine.Decide("restart", operation, Now));
        Assert.Equal(new MachineRecreateRequested(Id, Tenant, operation, Now), machine.Decide("recreate", operation, Now));
        Assert.Equal(new MachineDestroyRequested(Id, Tenant, operation, Now), machine.Decide("destroy", operation, Now));
    }

    [Fact]
    public void A_running_machine_refuses_to_start_naming_its_state()
    {
        var refused = Assert.Throws<IllegalTransitionException>(() => Given(Requested, Running(Creation)).Decide("start", Guid.CreateVersion7(), Now));

        Assert.Equal(("start", MachineStates.Running), (refused.Action, refused.State));
        Assert.Equal("A machine that is running cannot start.", refused.Message);
    }

    [Fact]
    public void A_stopped_machine_starts_again_and_is_running_once_its_start_is_reported()
    {
        var stop = Guid.CreateVersion7();
        var start = Guid.CreateVersion7();
        var machine = Given(Requested, Running(Creation), new MachineStopRequested(Id, Tenant, stop, Now), new MachineStopped(Id, Tenant, stop, 0, Now));

        Assert.Equal(MachineStates.Stopped, machine.State);
        Assert.Equal(new MachineStartRequested(Id, Tenant, start, Now), machine.Decide("start", start, Now));
        var started = machine.Apply(new MachineStartRequested(Id, Tenant, start, Now));
        Assert.True(started.Awaits(start));
        Assert.Equal(MachineStates.Running, started.Apply(Running(start)).State);
        Assert.Null(started.Apply(Running(start)).Pending);
    }

    [Fact]
    public void A_machine_whose_creation_failed_and_was_undone_can_only_be_destroyed()
    {
        var machine = Given(Requested, new MachineFailed(Id, Tenant, Creation, "creation failed at the quota step: no room", null, Now, Step: "quota"));

        var refused = Assert.Throws<IllegalTransitionException>(() => machine.Decide("start", Guid.CreateVersion7(), Now));
        Assert.Contains("failed at the quota step", refused.Message, StringComparison.Ordinal);
        Assert.Throws<IllegalTransitionException>(() => machine.Decide("recreate", Guid.CreateVersion7(), Now));
        Assert.IsType<MachineDestroyRequested>(machine.Decide("destroy", Guid.CreateVersion7(), Now));
    }

    [Fact]
    public void A_machine_being_destroyed_or_destroyed_refuses_to_be_destroyed_again()
    {
        var destroy = Guid.CreateVersion7();
        var destroying = Given(Requested, Running(Creation), new MachineDestroyRequested(Id, Tenant, destroy, Now));

        Assert.Throws<IllegalTransitionException>(() => destroying.Decide("destroy", Guid.CreateVersion7(), Now));
        Assert.Throws<IllegalTransitionException>(() => destroying.Apply(new MachineDestroyed(Id, Tenant, destroy, Host, Now)).Decide("destroy", Guid.CreateVersion7(), Now));
    }

    [Fact]
    public void A_process_that_exits_with_zero_stops_the_machine_and_any_other_exit_fails_it_with_the_reason()
    {
        var machine = Given(Requested, Running(Creation));

        Assert.Equal(new MachineStopped(Id, Tenant, null, 0, Now), machine.EndedBy(new MachineExited(Id, Tenant, Host, 0, "its command finished"), Now));
        Assert.Equal(new MachineFailed(Id, Tenant, null, "killed", null, Now), machine.EndedBy(new MachineExited(Id, Tenant, Host, null, "killed"), Now));
    }

    [Fact]
    public void Steps_count_only_for_the_operation_in_flight()
    {
        var machine = Given(Requested,
            new MachineStepCompleted(Id, Tenant, Creation, "quota", "reserved", Now),
            new MachineStepCompleted(Id, Tenant, Guid.CreateVersion7(), "network", "late copy of another operation", Now));

        Assert.Equal(["quota"], machine.Steps);
    }
}
