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

    [Fact]
    public void A_report_that_it_runs_records_running_only_while_the_machine_waits_for_that_start()
    {
        var (stop, start) = (Guid.CreateVersion7(), Guid.CreateVersion7());
        var starting = Given(Requested, Running(Creation), new MachineStopRequested(Id, Tenant, stop, Now), new MachineStopped(Id, Tenant, stop, 0, Now),
            new MachineStartRequested(Id, Tenant, start, Now));
        var launched = new MachineLaunched(Id, Tenant, start, Host, null, "tcg", "cold", 12.5);

        Assert.Equal([new MachineRunning(Id, Tenant, start, Host, null, "tcg", "cold", 12.5, Now)], starting.Decide(launched, Now));
        Assert.Empty(starting.Decide(launched with { OperationId = stop }, Now));
        Assert.Empty(starting.Apply(starting.Decide(launched, Now)[0]).Decide(launched, Now));
        Assert.Equal([new MachineFailed(Id, Tenant, start, "no room", null, Now)], starting.Decide(new MachineLaunchFailed(Id, Tenant, start, Host, "no room"), Now));
    }

    [Fact]
    public void A_halt_ends_a_stop_and_is_the_first_half_of_a_restart_which_records_nothing_and_launches_again()
    {
        var (stop, restart) = (Guid.CreateVersion7(), Guid.CreateVersion7());
        var stopping = Given(Requested, Running(Creation), new MachineStopRequested(Id, Tenant, stop, Now));
        var restarting = Given(Requested, Running(Creation), new MachineRestartRequested(Id, Tenant, restart, Now));

        Assert.Equal([new MachineStopped(Id, Tenant, stop, null, Now)], stopping.Decide(new MachineHalted(Id, Tenant, stop, Host), Now));
        Assert.False(stopping.RelaunchesAfter(new MachineHalted(Id, Tenant, stop, Host)));
        Assert.Empty(restarting.Decide(new MachineHalted(Id, Tenant, restart, Host), Now));
        Assert.True(restarting.RelaunchesAfter(new MachineHalted(Id, Tenant, restart, Host)));
        Assert.False(restarting.RelaunchesAfter(new MachineHalted(Id, Tenant, stop, Host)));
    }

    [Fact]
    public void A_process_that_ends_is_recorded_only_while_the_machine_runs()
    {
        var exited = new MachineExited(Id, Tenant, Host, 137, "killed");

        Assert.Equal([new MachineFailed(Id, Tenant, null, "killed", 137, Now)], Given(Requested, Running(Creation)).Decide(exited, Now));
        Assert.Empty(Given(Requested).Decide(exited, Now));
    }

    [Fact]
    public void A_step_is_recorded_once_and_only_for_the_operation_in_flight()
    {
        var step = new MachineStepCompleted(Id, Tenant, Creation, "quota", "reserved", Now);
        var machine = Given(Requested);

        Assert.Equal([step], machine.Decide(step));
        Assert.Empty(machine.Apply(step).Decide(step));
        Assert.Empty(machine.Decide(step with { OperationId = Guid.CreateVersion7() }));
    }

    [Fact]
    public void The_end_of_a_creation_records_running_and_then_how_a_process_that_ended_meanwhile_ended()
    {
        var launched = new MachineLaunched(Id, Tenant, Creation, Host, null, null, "snapshot", 80);
        var creating = Given(Requested);

        Assert.Equal([new MachineRunning(Id, Tenant, Creation, Host, null, null, "snapshot", 80, Now)], creating.Created(Creation, launched, null, Now));
        Assert.Equal([new MachineRunning(Id, Tenant, Creation, Host, null, null, "snapshot", 80, Now), new MachineStopped(Id, Tenant, null, 0, Now)],
            creating.Created(Creation, launched, new MachineExited(Id, Tenant, Host, 0, "done"), Now));
        Assert.Empty(Given(Requested, Running(Creation)).Created(Creation, launched, null, Now));
    }

    [Fact]
    public void A_flow_that_gave_everything_back_ends_a_destroy_destroyed_and_a_creation_failed_naming_the_step()
    {
        var destroy = Guid.CreateVersion7();

        Assert.Equal(new MachineFailed(Id, Tenant, Creation, "creation failed at the network step: no address", null, Now, "network"),
            Given(Requested).Finished("network", "no address", Now));
        Assert.Equal(new MachineDestroyed(Id, Tenant, destroy, Host, Now),
            Given(Requested, Running(Creation), new MachineDestroyRequested(Id, Tenant, destroy, Now)).Finished(null, null, Now));
        Assert.Null(Given(Requested, Running(Creation)).Finished(null, null, Now));
    }

    [Fact]
    public void A_running_machine_is_paused_once_its_host_froze_it_and_runs_again_once_its_host_thawed_it()
    {
        var pause = Guid.CreateVersion7();
        var pausing = Given(Requested, Running(Creation), Given(Requested, Running(Creation)).Decide("pause", pause, Now));
        Assert.Equal(MachineStates.Pausing, pausing.State);
        Assert.Equal([new MachinePaused(Id, Tenant, pause, 4.5, Now)], pausing.Decide(new MachineFrozen(Id, Tenant, pause, Host, 4.5), Now));

        var paused = pausing.Apply(new MachinePaused(Id, Tenant, pause, 4.5, Now));
        Assert.Empty(paused.Decide(new MachineFrozen(Id, Tenant, pause, Host, 4.5), Now));
        var resume = Guid.CreateVersion7();
        var resuming = paused.Apply(paused.Decide("resume", resume, Now));
        Assert.Equal(new PendingOperation(resume, "resume", Now), resuming.Pending);
        Assert.Equal([new MachineResumed(Id, Tenant, resume, 2.5, Now)], resuming.Decide(new MachineThawed(Id, Tenant, resume, Host, 2.5), Now));
        Assert.Equal(MachineStates.Running, resuming.Apply(new MachineResumed(Id, Tenant, resume, 2.5, Now)).State);
    }

    [Fact]
    public void A_paused_machine_resumes_stops_recreates_or_is_destroyed_but_does_not_pause_again_or_restart()
    {
        var paused = Given(Requested, Running(Creation), new MachinePauseRequested(Id, Tenant, Creation, Now), new MachinePaused(Id, Tenant, Creation, 1, Now));

        Assert.IsType<MachineResumeRequested>(paused.Decide("resume", Guid.CreateVersion7(), Now));
        Assert.IsType<MachineStopRequested>(paused.Decide("stop", Guid.CreateVersion7(), Now));
        Assert.IsType<MachineRecreateRequested>(paused.Decide("recreate", Guid.CreateVersion7(), Now));
        Assert.IsType<MachineDestroyRequested>(paused.Decide("destroy", Guid.CreateVersion7(), Now));
        Assert.Equal("A machine that is paused cannot pause.", Assert.Throws<IllegalTransitionException>(() => paused.Decide("pause", Guid.CreateVersion7(), Now)).Message);
        Assert.Throws<IllegalTransitionException>(() => paused.Decide("restart", Guid.CreateVersion7(), Now));
        Assert.Equal("A machine that is running cannot resume.", Assert.Throws<IllegalTransitionException>(() => Given(Requested, Running(Creation)).Decide("resume", Guid.CreateVersion7(), Now)).Message);
    }

    [Fact]
    public void A_pause_the_host_could_not_make_leaves_the_machine_running_with_why_and_a_failed_resume_fails_it()
    {
        var pause = Guid.CreateVersion7();
        var pausing = Given(Requested, Running(Creation), new MachinePauseRequested(Id, Tenant, pause, Now));
        var refused = Assert.Single(pausing.Decide(new MachineFreezeFailed(Id, Tenant, pause, Host, "no freezer"), Now));
        Assert.Equal(new MachinePauseFailed(Id, Tenant, pause, "no freezer", Now), refused);
        Assert.Equal((MachineStates.Running, "no freezer"), (pausing.Apply(refused).State, pausing.Apply(refused).LastError));

        var resume = Guid.CreateVersion7();
        var resuming = pausing.Apply(new MachinePaused(Id, Tenant, pause, 1, Now)).Apply(new MachineResumeRequested(Id, Tenant, resume, Now));
        var failed = Assert.IsType<MachineFailed>(Assert.Single(resuming.Decide(new MachineFreezeFailed(Id, Tenant, resume, Host, "state file gone"), Now)));
        Assert.Equal("it could not be resumed: state file gone", failed.Reason);
        Assert.Empty(resuming.Decide(new MachineFreezeFailed(Id, Tenant, pause, Host, "a stale report"), Now));
    }

    [Fact]
    public void A_paused_machine_whose_process_ended_is_recorded_as_ended()
    {
        var paused = Given(Requested, Running(Creation), new MachinePauseRequested(Id, Tenant, Creation, Now), new MachinePaused(Id, Tenant, Creation, 1, Now));

        Assert.IsType<MachineFailed>(Assert.Single(paused.Decide(new MachineExited(Id, Tenant, Host, 137, "killed"), Now)));
    }

    [Fact]
    public void A_time_to_live_warns_within_half_its_span_then_destroys_the_machine_once_and_a_keepalive_starts_it_again()
    {
        var machine = Given(Requested with { Lifecycle = new MachineLifecyclePolicy(100, null) }, Running(Creation));
        var destroy = Guid.CreateVersion7();

        Assert.Empty(machine.DecideExpiry(Now.AddSeconds(40), null, TimeSpan.FromSeconds(60), destroy));
        var warned = Assert.IsType<MachineExpiring>(Assert.Single(machine.DecideExpiry(Now.AddSeconds(60), null, TimeSpan.FromSeconds(60), destroy)));
        Assert.Equal(("ttl", "destroy", Now.AddSeconds(100)), (warned.Reason, warned.Action, warned.ActsAt));
        machine = machine.Apply(warned);
        Assert.Empty(machine.DecideExpiry(Now.AddSeconds(70), null, TimeSpan.FromSeconds(60), destroy));
        Assert.Equal([new MachineExpired(Id, Tenant, "ttl", "destroy", destroy, Now.AddSeconds(100)), new MachineDestroyRequested(Id, Tenant, destroy, Now.AddSeconds(100))],
            machine.DecideExpiry(Now.AddSeconds(100), null, TimeSpan.FromSeconds(60), destroy));

        var kept = machine.Apply(machine.KeepAlive(Now.AddSeconds(90)));
        Assert.Equal(Now.AddSeconds(190), kept.ExpiresAt);
        Assert.Null(kept.Expiring);
        Assert.Empty(kept.DecideExpiry(Now.AddSeconds(100), null, TimeSpan.FromSeconds(60), destroy));
    }

    [Fact]
    public void Idleness_counts_from_the_last_work_seen_and_work_after_a_warning_puts_the_action_off_until_a_new_warning()
    {
        var machine = Given(Requested with { Lifecycle = new MachineLifecyclePolicy(null, new IdlePolicy(10, "stop")) }, Running(Creation));
        var warning = TimeSpan.FromSeconds(60);

        Assert.Empty(machine.DecideExpiry(Now.AddSeconds(24), Now.AddSeconds(20), warning, Guid.Empty));
        var warned = Assert.IsType<MachineExpiring>(Assert.Single(machine.DecideExpiry(Now.AddSeconds(25), Now.AddSeconds(20), warning, Guid.Empty)));
        Assert.Equal(("idle", "stop", Now.AddSeconds(30)), (warned.Reason, warned.Action, warned.ActsAt));
        machine = machine.Apply(warned);

        // It worked again at 28: nothing at 30, a new warning at 33, the stop at 38.
        Assert.Empty(machine.DecideExpiry(Now.AddSeconds(30), Now.AddSeconds(28), warning, Guid.Empty));
        var again = Assert.IsType<MachineExpiring>(Assert.Single(machine.DecideExpiry(Now.AddSeconds(33), Now.AddSeconds(28), warning, Guid.Empty)));
        Assert.Equal(Now.AddSeconds(38), again.ActsAt);
        var stop = Guid.CreateVersion7();
        var expired = machine.Apply(again).DecideExpiry(Now.AddSeconds(38), Now.AddSeconds(28), warning, stop);
        Assert.Equal([new MachineExpired(Id, Tenant, "idle", "stop", stop, Now.AddSeconds(38)), new MachineStopRequested(Id, Tenant, stop, Now.AddSeconds(38))], expired);
    }

    [Fact]
    public void A_paused_machine_is_not_judged_idle_but_its_time_to_live_still_ends_it_and_an_action_its_driver_cannot_take_is_recorded_alone()
    {
        var policy = new MachineLifecyclePolicy(1000, new IdlePolicy(10, "pause"));
        var paused = Given(Requested with { Lifecycle = policy }, Running(Creation), new MachinePauseRequested(Id, Tenant, Creation, Now), new MachinePaused(Id, Tenant, Creation, 1, Now));
        Assert.Empty(paused.DecideExpiry(Now.AddSeconds(500), null, TimeSpan.FromSeconds(60), Guid.Empty));
        Assert.IsType<MachineDestroyRequested>(paused.DecideExpiry(Now.AddSeconds(1000), null, TimeSpan.FromSeconds(60), Guid.Empty)[1]);

        var simulated = Given(Requested with { Driver = "simulated", Lifecycle = new MachineLifecyclePolicy(null, new IdlePolicy(10, "pause")) }, Running(Creation));
        var expired = Assert.IsType<MachineExpired>(Assert.Single(simulated.DecideExpiry(Now.AddSeconds(10), null, TimeSpan.FromSeconds(60), Guid.Empty)));
        Assert.Empty(simulated.Apply(expired).DecideExpiry(Now.AddSeconds(11), null, TimeSpan.FromSeconds(60), Guid.Empty));
    }
}
