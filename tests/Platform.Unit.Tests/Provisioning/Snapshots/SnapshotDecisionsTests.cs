using System.Collections.Immutable;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Machines;
using Platform.Provisioning.Snapshots;

namespace Platform.Unit.Tests.Provisioning.Snapshots;

/// <summary>What a snapshot records from its host's and its quota's answers, what a delete may do, and what a machine made from one is.</summary>
public sealed class SnapshotDecisionsTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);

    private static Snapshot Requested(string kind = "microvm", SnapshotFork? fork = null) => Snapshot.Create(new SnapshotRequested(
        Guid.NewGuid(), Guid.NewGuid(), "before", Guid.NewGuid(), "agent-7", Guid.NewGuid(), kind, kind, new TemplateRef("microvm-default", "abc123"),
        new MachineShape(1, 128, 0), kind == "microvm" ? null : ["sleep", "600"], new Dictionary<string, string> { ["team"] = "ml" }, fork, Now));

    [Fact]
    public void A_snapshot_saved_by_its_host_is_ready_once_and_a_late_failure_changes_nothing()
    {
        var snapshot = Requested();
        var saved = new SnapshotSaved(snapshot.Id, snapshot.MachineId, snapshot.TenantId, snapshot.HostId, "memory+filesystem", 4096, 80);

        var ready = snapshot.Apply(Assert.Single(snapshot.Decide(saved, Now)));

        Assert.Equal((SnapshotStates.Ready, "memory+filesystem", 4096L), (ready.State, ready.Contents, ready.SizeBytes));
        Assert.Empty(ready.Decide(saved, Now));
        Assert.Empty(ready.Fail("too late", Now));
    }

    [Fact]
    public void A_ready_snapshot_is_deleted_through_its_host_a_failed_one_at_once_and_one_being_made_not_yet()
    {
        var creating = Requested();
        var ready = creating.Apply(new SnapshotReady(creating.Id, creating.TenantId, "filesystem", 1, 1, Now));
        var failed = creating.Apply(Assert.Single(creating.Fail("over quota", Now)));

        var deleting = ready.Apply(Assert.IsType<SnapshotDeleteRequested>(ready.Delete(Now)));

        Assert.IsType<SnapshotDeleted>(failed.Delete(Now));
        Assert.Throws<SnapshotStateException>(() => creating.Delete(Now));
        Assert.Throws<SnapshotStateException>(() => deleting.Delete(Now));
        Assert.Equal(SnapshotStates.Deleted, deleting.Apply(Assert.Single(deleting.Decide(new SnapshotRemoved(ready.Id, ready.TenantId, ready.HostId), Now))).State);
        Assert.Empty(ready.Decide(new SnapshotRemoved(ready.Id, ready.TenantId, ready.HostId), Now));
    }

    [Fact]
    public void A_machine_from_a_snapshot_is_made_as_its_machine_was_unless_the_request_gives_its_own_shape_command_or_labels()
    {
        var snapshot = Requested("sandbox");
        var bare = new CreateMachineRequest(null, null, null, null, null, null, null, null, null, null, null) { FromSnapshot = snapshot.Id.ToString() };

        var asItWas = MachineRequestRules.StartingFrom(bare, snapshot);
        var resized = MachineRequestRules.StartingFrom(bare with { MemoryMiB = 256, Command = ["true"], Labels = [] }, snapshot);

        Assert.Empty(MachineRequestRules.Check(asItWas));
        Assert.Equal(("sandbox", "sandbox", "microvm-default@abc123", 1, 128), (asItWas.Kind, asItWas.Driver, asItWas.Template, asItWas.Vcpus, asItWas.MemoryMiB));
        Assert.Equal(["sleep", "600"], asItWas.Command!);
        Assert.Equal("ml", asItWas.Labels!["team"]);
        Assert.Equal((256, "true", 0), (resized.MemoryMiB, resized.Command!.Single(), resized.Labels!.Count));
        Assert.Empty(MachineRequestRules.SnapshotConflicts(bare with { MemoryMiB = 256 }, snapshot));
    }

    [Fact]
    public void A_micro_vm_from_a_snapshot_keeps_its_shape_and_template_and_the_request_is_told_field_by_field()
    {
        var snapshot = Requested("microvm");
        var request = new CreateMachineRequest(null, "sandbox", "other@1", "sandbox", 2, 256, null, null, null, null, "cold") { FromSnapshot = snapshot.Id.ToString() };

        var conflicts = MachineRequestRules.SnapshotConflicts(request, snapshot).Select(c => c.Field).Order();

        Assert.Equal(["boot", "driver", "kind", "memoryMiB", "template", "vcpus"], conflicts);
    }

    [Fact]
    public void A_snapshot_its_host_never_saved_fails_once_its_time_is_up_and_not_before()
    {
        var snapshot = Requested();
        var limit = TimeSpan.FromMinutes(10);

        var failed = Assert.IsType<SnapshotFailed>(Assert.Single(snapshot.Overdue(Now + limit, limit)));

        Assert.Empty(snapshot.Overdue(Now + limit - TimeSpan.FromSeconds(1), limit));
        Assert.Equal("its host did not save it within 10 minutes", failed.Reason);
        Assert.Empty(snapshot.Apply(failed).Overdue(Now + limit + limit, limit));
        Assert.Empty(snapshot.Apply(new SnapshotReady(snapshot.Id, snapshot.TenantId, "filesystem", 1, 1, Now)).Overdue(Now + limit, limit));
    }

    [Fact]
    public void A_refused_fork_machine_is_remembered_with_why()
    {
        var machineId = Guid.NewGuid();
        var snapshot = Requested(fork: new SnapshotFork(Guid.NewGuid(), [machineId]));

        var refused = snapshot.Apply(new ForkMachineRefused(snapshot.Id, snapshot.TenantId, machineId, "no room", Now));

        Assert.Equal(ImmutableDictionary<Guid, string>.Empty.Add(machineId, "no room"), refused.RefusedForks);
    }
}
