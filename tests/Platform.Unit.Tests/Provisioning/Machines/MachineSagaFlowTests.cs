using MassTransit;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.Provisioning.Hosts;
using Platform.Provisioning.Machines;
using Platform.Provisioning.Machines.Saga;
using static Platform.Unit.Tests.Provisioning.Machines.MachineSagaHarness;

namespace Platform.Unit.Tests.Provisioning.Machines;

/// <summary>
/// The machine saga's flows, step by step, in MassTransit's in-memory harness: each step's command, each refusal and what
/// its compensation gives back (and what it does not), each deadline, a destroy midway, and late or stray messages.
/// </summary>
public sealed class MachineSagaFlowTests : IAsyncLifetime
{
    private static readonly Guid ExitNode = Guid.CreateVersion7();
    private MachineSagaHarness _flow = null!;

    public async Task InitializeAsync() => _flow = await StartAsync();

    public async Task DisposeAsync() => await _flow.DisposeAsync();

    [Fact]
    public async Task Creating_a_machine_reserves_quota_allocates_its_network_launches_it_registers_it_and_records_it_running()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;

        Assert.Equal(new QuotaResources(1, 1, 64, 0, 0, 0), _flow.PublishedOnce<ReserveQuota>(c => c.MachineId == id).Requested);
        var flow = await _flow.InStateAsync(id, s => s.ReservingQuota);
        Assert.Equal((MachineSteps.Quota, 1, _flow.Time.GetUtcNow() + Options.StepTimeout), (flow.Step, flow.Attempts, flow.Deadline));
        await _flow.AnswerAsync(Reserved(machine));

        _flow.PublishedOnce<AllocateNetwork>(c => c.MachineId == id);
        await _flow.AnswerAsync(Allocated(machine));

        var launch = _flow.SentToHostOnce<LaunchMachine>(c => c.MachineId == id);
        Assert.Equal((machine.OperationId, "10.0.0.2"), (launch.OperationId, launch.Network?.Address));
        Assert.Equal(_flow.Time.GetUtcNow() + Options.LaunchTimeout, (await _flow.InStateAsync(id, s => s.Launching)).Deadline);
        await _flow.AnswerAsync(Launched(machine));

        Assert.Equal(Owner, _flow.PublishedOnce<RegisterMachine>(c => c.MachineId == id).Owner);
        await _flow.AnswerAsync(new MachineRegistered(id, Tenant, "m", "sandbox", Owner, _flow.Time.GetUtcNow()));

        await _flow.InStateAsync(id, s => s.Ready);
        var events = _flow.MachineEvents(id);
        Assert.Equal([MachineSteps.Quota, MachineSteps.Network, MachineSteps.Launch, MachineSteps.Registration], events.OfType<MachineStepCompleted>().Select(s => s.Step));
        var running = Assert.IsType<MachineRunning>(events[^1]);
        Assert.Equal((machine.OperationId, Host, "cold"), (running.OperationId, running.HostId, running.BootedFrom));
        Assert.Equal(MachineStates.Running, events.Aggregate((Machine?)null, Machine.Evolve)!.State);
        Assert.All(_flow.Streams.MetadataOf(Machine.StreamOf(id)).Skip(1), m => Assert.Equal((Tenant.ToString(), "service:provisioning"), (m.TenantId, m.Actor)));
        Assert.Empty(_flow.Published<ReleaseQuota>(c => c.MachineId == id));
    }

    [Fact]
    public async Task Creating_a_machine_behind_an_exit_node_reserves_a_tunnel_and_attaches_it_after_the_launch_and_before_registration()
    {
        var machine = await _flow.RequestAsync(ExitNode);
        var id = machine.MachineId;

        Assert.Equal(1, _flow.PublishedOnce<ReserveQuota>(c => c.MachineId == id).Requested.Tunnels);
        await _flow.AnswerAsync(Reserved(machine));
        await _flow.AnswerAsync(Allocated(machine));
        await _flow.AnswerAsync(Launched(machine));

        var attach = _flow.PublishedOnce<AttachTunnel>(c => c.MachineId == id);
        Assert.Equal((ExitNode, Host, "10.0.0.2", "10.0.0.1", 24), (attach.ExitNodeId, attach.HostId, attach.MachineAddress, attach.Gateway, attach.PrefixLength));
        Assert.Empty(_flow.Published<RegisterMachine>(c => c.MachineId == id));
        await _flow.AnswerAsync(new TunnelAttached(id, Tenant, ExitNode, Host, "100.64.0.2", "key", _flow.Time.GetUtcNow()));

        _flow.PublishedOnce<RegisterMachine>(c => c.MachineId == id);
    }

    [Fact]
    public async Task Creating_a_machine_when_quota_is_rejected_releases_nothing_it_did_not_take_and_fails_naming_the_limit()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;

        await _flow.AnswerAsync(new QuotaRejected(id, Tenant, "machines", 10, 1, 10));

        await _flow.EndedAsync(id);
        Assert.Empty(_flow.Published<ReleaseQuota>(c => c.MachineId == id));
        Assert.Empty(_flow.Published<AllocateNetwork>(c => c.MachineId == id));
        var failed = Assert.IsType<MachineFailed>(_flow.MachineEvents(id)[^1]);
        Assert.Equal(("creation failed at the quota step: the tenant's machines quota would be 11 of 10", MachineSteps.Quota), (failed.Reason, failed.Step));
        Assert.Equal(id, Assert.IsType<MachineUnplaced>(Assert.Single(_flow.Streams.Read(HostCatalog.StreamOf(Host)))).MachineId);
    }

    [Fact]
    public async Task A_network_refusal_gives_back_the_quota_and_nothing_else()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;
        await _flow.AnswerAsync(Reserved(machine));

        await _flow.AnswerAsync(new NetworkAllocationRefused(id, Tenant, "pool-exhausted", "the tenant's segment has no free address"));

        _flow.PublishedOnce<ReleaseQuota>(c => c.MachineId == id);
        Assert.Empty(_flow.Published<ReleaseNetwork>(c => c.MachineId == id));
        await _flow.AnswerAsync(new QuotaReleased(id, Tenant, new QuotaResources(1, 1, 64, 0, 0, 0)));
        await _flow.EndedAsync(id);
        Assert.Equal("creation failed at the network step: the tenant's segment has no free address", Assert.IsType<MachineFailed>(_flow.MachineEvents(id)[^1]).Reason);
    }

    [Fact]
    public async Task A_failed_launch_tears_the_machine_down_then_releases_its_network_then_its_quota()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;
        await _flow.AnswerAsync(Reserved(machine));
        await _flow.AnswerAsync(Allocated(machine));

        await _flow.AnswerAsync(new MachineLaunchFailed(id, Tenant, machine.OperationId, Host, "bubblewrap exited with 1"));

        Assert.Equal(machine.OperationId, _flow.SentToHostOnce<TearDownMachine>(c => c.MachineId == id).OperationId);
        Assert.Empty(_flow.Published<ReleaseNetwork>(c => c.MachineId == id));
        await _flow.AnswerAsync(new MachineTornDown(id, Tenant, machine.OperationId, Host));
        _flow.PublishedOnce<ReleaseNetwork>(c => c.MachineId == id);
        Assert.Empty(_flow.Published<ReleaseQuota>(c => c.MachineId == id));
        await _flow.AnswerAsync(new NetworkReleased(id, Tenant, "10.0.0.2", _flow.Time.GetUtcNow(), _flow.Time.GetUtcNow().AddMinutes(5)));
        _flow.PublishedOnce<ReleaseQuota>(c => c.MachineId == id);
        await _flow.AnswerAsync(new QuotaReleased(id, Tenant, new QuotaResources(1, 1, 64, 0, 0, 0)));

        await _flow.EndedAsync(id);
        var events = _flow.MachineEvents(id);
        Assert.Equal([MachineSteps.Quota, MachineSteps.Network, MachineSteps.TearDown, MachineSteps.ReleaseNetwork, MachineSteps.ReleaseQuota],
            events.OfType<MachineStepCompleted>().Select(s => s.Step));
        Assert.Equal("creation failed at the launch step: bubblewrap exited with 1", Assert.IsType<MachineFailed>(events[^1]).Reason);
    }

    [Fact]
    public async Task An_unanswered_step_is_issued_again_with_a_longer_deadline_and_fails_the_creation_once_its_attempts_are_used_up()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;
        _flow.Time.Advance(Options.StepTimeout + TimeSpan.FromSeconds(1));

        await _flow.AnswerAsync(new MachineStepOverdue(id, MachineSteps.Quota, 1));

        Assert.Equal(2, _flow.Published<ReserveQuota>(c => c.MachineId == id).Count);
        var again = await _flow.InStateAsync(id, s => s.ReservingQuota);
        Assert.Equal((2, _flow.Time.GetUtcNow() + 2 * Options.StepTimeout), (again.Attempts, again.Deadline));

        await _flow.AnswerAsync(new MachineStepOverdue(id, MachineSteps.Quota, 2));

        // The reservation may have been made and its answer lost: what it may hold is given back.
        _flow.PublishedOnce<ReleaseQuota>(c => c.MachineId == id);
        await _flow.AnswerAsync(new QuotaReleased(id, Tenant, new QuotaResources(0, 0, 0, 0, 0, 0)));
        await _flow.EndedAsync(id);
        Assert.Equal("creation failed at the quota step: no answer to the quota step after 2 attempts (the last waited 60 s)",
            Assert.IsType<MachineFailed>(_flow.MachineEvents(id)[^1]).Reason);
    }

    [Fact]
    public async Task An_overdue_notice_of_an_earlier_attempt_or_another_step_changes_nothing()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;
        await _flow.AnswerAsync(new MachineStepOverdue(id, MachineSteps.Quota, 1));

        await _flow.AnswerAsync(new MachineStepOverdue(id, MachineSteps.Quota, 1));
        await _flow.AnswerAsync(new MachineStepOverdue(id, MachineSteps.Network, 2));

        Assert.Equal(2, _flow.Published<ReserveQuota>(c => c.MachineId == id).Count);
        Assert.Equal(2, (await _flow.InStateAsync(id, s => s.ReservingQuota)).Attempts);
    }

    [Fact]
    public async Task A_destroy_while_the_machine_launches_stops_the_creation_where_it_is_and_gives_back_what_it_took()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;
        await _flow.AnswerAsync(Reserved(machine));
        await _flow.AnswerAsync(Allocated(machine));
        _flow.SentToHostOnce<LaunchMachine>(c => c.MachineId == id);

        var destroy = await _flow.DestroyAsync(id);

        Assert.Equal(destroy.OperationId, _flow.SentToHostOnce<TearDownMachine>(c => c.MachineId == id).OperationId);
        // The launch answered for the creation comes late: the flow is undoing it.
        await _flow.AnswerAsync(Launched(machine));
        Assert.Empty(_flow.Published<RegisterMachine>(c => c.MachineId == id));
        await _flow.AnswerAsync(new MachineTornDown(id, Tenant, destroy.OperationId, Host));
        await _flow.AnswerAsync(new NetworkReleased(id, Tenant, "10.0.0.2", _flow.Time.GetUtcNow(), _flow.Time.GetUtcNow().AddMinutes(5)));
        await _flow.AnswerAsync(new QuotaReleased(id, Tenant, new QuotaResources(1, 1, 64, 0, 0, 0)));

        await _flow.EndedAsync(id);
        Assert.Equal(destroy.OperationId, Assert.IsType<MachineDestroyed>(_flow.MachineEvents(id)[^1]).OperationId);
        Assert.DoesNotContain(_flow.MachineEvents(id), e => e is MachineRunning);
    }

    [Fact]
    public async Task Destroying_a_ready_machine_unregisters_it_detaches_its_tunnel_tears_it_down_and_releases_its_network_and_quota_in_that_order()
    {
        var machine = await ReadyAsync(ExitNode);
        var id = machine.MachineId;

        var destroy = await _flow.DestroyAsync(id);

        _flow.PublishedOnce<UnregisterMachine>(c => c.MachineId == id);
        await _flow.AnswerAsync(new MachineUnregistered(id, Tenant, _flow.Time.GetUtcNow()));
        _flow.PublishedOnce<DetachTunnel>(c => c.MachineId == id);
        await _flow.AnswerAsync(new TunnelDetached(id, Tenant, ExitNode, _flow.Time.GetUtcNow()));
        _flow.SentToHostOnce<TearDownMachine>(c => c.MachineId == id);
        await _flow.AnswerAsync(new MachineTornDown(id, Tenant, destroy.OperationId, Host));
        _flow.PublishedOnce<ReleaseNetwork>(c => c.MachineId == id);
        await _flow.AnswerAsync(new NetworkReleased(id, Tenant, "10.0.0.2", _flow.Time.GetUtcNow(), _flow.Time.GetUtcNow().AddMinutes(5)));
        _flow.PublishedOnce<ReleaseQuota>(c => c.MachineId == id);
        await _flow.AnswerAsync(new QuotaReleased(id, Tenant, new QuotaResources(1, 1, 64, 0, 1, 0)));

        await _flow.EndedAsync(id);
        Assert.Equal([MachineSteps.Unregister, MachineSteps.DetachTunnel, MachineSteps.TearDown, MachineSteps.ReleaseNetwork, MachineSteps.ReleaseQuota],
            _flow.MachineEvents(id).SkipWhile(e => e is not MachineDestroyRequested).OfType<MachineStepCompleted>().Select(s => s.Step));
        Assert.IsType<MachineDestroyed>(_flow.MachineEvents(id)[^1]);
        Assert.Equal(id, Assert.IsType<MachineUnplaced>(Assert.Single(_flow.Streams.Read(HostCatalog.StreamOf(Host)))).MachineId);
    }

    [Fact]
    public async Task A_machine_whose_process_ends_during_its_creation_is_recorded_running_and_then_failed_once_it_is_created()
    {
        var machine = await _flow.RequestAsync();
        var id = machine.MachineId;
        await _flow.AnswerAsync(Reserved(machine));
        await _flow.AnswerAsync(Allocated(machine));
        await _flow.AnswerAsync(Launched(machine));

        await _flow.AnswerAsync(new MachineExited(id, Tenant, Host, 137, "killed by the OOM killer"));
        await _flow.AnswerAsync(new MachineRegistered(id, Tenant, "m", "sandbox", Owner, _flow.Time.GetUtcNow()));

        await _flow.InStateAsync(id, s => s.Ready);
        var events = _flow.MachineEvents(id);
        Assert.IsType<MachineRunning>(events[^2]);
        Assert.Equal((137, "killed by the OOM killer"), (Assert.IsType<MachineFailed>(events[^1]).ExitCode, ((MachineFailed)events[^1]).Reason));
    }

    [Fact]
    public async Task A_late_copy_of_a_request_whose_flow_has_ended_starts_nothing()
    {
        var machine = await _flow.RequestAsync();
        await _flow.AnswerAsync(new QuotaRejected(machine.MachineId, Tenant, "machines", 10, 1, 10));
        await _flow.EndedAsync(machine.MachineId);

        await _flow.AnswerAsync(machine);

        await _flow.EndedAsync(machine.MachineId);
        Assert.Single(_flow.Published<ReserveQuota>(c => c.MachineId == machine.MachineId));
    }

    [Fact]
    public async Task An_answer_about_a_machine_without_a_flow_is_dropped_without_a_fault()
    {
        var stray = new QuotaReserved(Guid.CreateVersion7(), Tenant, new QuotaResources(1, 1, 64, 0, 0, 0));

        await _flow.DeliverAsync(stray);

        Assert.Empty(_flow.Published<Fault<QuotaReserved>>(_ => true));
        Assert.Null(_flow.Saga.Sagas.Contains(stray.MachineId));
    }

    private async Task<MachineRequested> ReadyAsync(Guid? exitNode)
    {
        var machine = await _flow.RequestAsync(exitNode);
        await _flow.AnswerAsync(Reserved(machine));
        await _flow.AnswerAsync(Allocated(machine));
        await _flow.AnswerAsync(Launched(machine));
        if (exitNode is { } node)
        {
            await _flow.AnswerAsync(new TunnelAttached(machine.MachineId, Tenant, node, Host, "100.64.0.2", "key", _flow.Time.GetUtcNow()));
        }

        await _flow.AnswerAsync(new MachineRegistered(machine.MachineId, Tenant, "m", "sandbox", Owner, _flow.Time.GetUtcNow()));
        await _flow.InStateAsync(machine.MachineId, s => s.Ready);
        return machine;
    }

    private static QuotaReserved Reserved(MachineRequested machine) =>
        new(machine.MachineId, Tenant, new QuotaResources(1, 1, 64, 0, machine.ExitNodeId is null ? 0 : 1, 0));

    private NetworkAllocated Allocated(MachineRequested machine) =>
        new(machine.MachineId, Tenant, "10.0.0.0/24", "10.0.0.2", 24, "10.0.0.1", _flow.Time.GetUtcNow());

    private static MachineLaunched Launched(MachineRequested machine) =>
        new(machine.MachineId, Tenant, machine.OperationId, Host, null, null, "cold", 12.5);
}
