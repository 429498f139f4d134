using Npgsql;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Provisioning.Hosts;
using Platform.Provisioning.Snapshots;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Creates a machine: resolves its template and driver, places it on a host within the host guardrails, and
/// records the placement and the request in one transaction. A lost race for a host's last room is retried
/// on fresh state; an Idempotency-Key makes a repeated request answer with the machine it created. Placements
/// take turns (<see cref="PlacementTurns"/>); a burst beyond what the line holds is refused before anything is written.
/// </summary>
public sealed class MachineCreation(EventStore store, HostDirectory hosts, MachineReader machines, ExitNodeCopies exitNodes, PlacementTurns turns, QuotaCheck quota, TimeProvider time)
{
    /// <summary>Many creations at once contend for one host's stream; each lost race is placed again, after a short random pause.</summary>
    private const int PlacementAttempts = 50;

    public async Task<MachineAccepted> CreateAsync(CreateMachineRequest request, Caller caller, string? idempotencyKey, Guid? correlationId, CancellationToken cancellationToken)
    {
        var tenantId = caller.TenantId ?? throw Problems.Forbidden("Machines belong to a tenant: create them as one of its users or API keys.");
        var snapshot = request.FromSnapshot is null ? null : await SnapshotToStartFromAsync(request.FromSnapshot, tenantId, cancellationToken);
        var effective = snapshot is null ? request : MachineRequestRules.StartingFrom(request, snapshot);
        var errors = MachineRequestRules.Check(effective);
        if (snapshot is not null)
        {
            foreach (var (field, problem) in MachineRequestRules.SnapshotConflicts(request, snapshot))
            {
                errors[field] = [problem];
            }
        }

        if (idempotencyKey is { Length: 0 or > 255 })
        {
            errors["Idempotency-Key"] = ["must be 1 to 255 characters"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var requestHash = MachineRequestRules.Hash(request);
        if (idempotencyKey is not null && await machines.FindByIdempotencyKeyAsync(tenantId, idempotencyKey, requestHash, cancellationToken) is { } repeated)
        {
            return repeated;
        }

        if (request.ExitNodeId is not null && !await exitNodes.UsableAsync(Guid.Parse(request.ExitNodeId), tenantId, cancellationToken))
        {
            throw Problems.Invalid("exitNodeId", "no exit node with that id exists for this tenant (GET /api/v1/exit-nodes lists them)");
        }

        await quota.EnsureFitsAsync(tenantId, QuotaCheck.Of(MachineRequestRules.ShapeOf(effective), effective.ExitNodeId is not null), cancellationToken);
        var metadata = new EventMetadata(correlationId, TenantId: tenantId.ToString(), Actor: caller.Subject);
        return await PlaceAndRecordAsync(effective, tenantId, Guid.CreateVersion7(), snapshot, metadata, idempotencyKey is null ? null : (idempotencyKey, requestHash), cancellationToken);
    }

    /// <summary>
    /// One machine of a fork, <paramref name="machineId"/>, made from its <paramref name="snapshot"/> (ready) as the machine
    /// it was taken of was made, named <paramref name="name"/>. A machine made already by an earlier copy of the request is
    /// not made again (null); a machine that cannot be made is refused with a <see cref="ProblemException"/> saying why.
    /// </summary>
    public async Task<MachineAccepted?> CreateForkAsync(Snapshot snapshot, Guid machineId, string name, EventMetadata metadata, CancellationToken cancellationToken)
    {
        var request = new CreateMachineRequest(name, snapshot.Kind, null, null, null, null, null, new Dictionary<string, string>(snapshot.Labels), null, null, null) { FromSnapshot = snapshot.Id.ToString() };
        return await store.ReadStreamVersionAsync(Machine.StreamOf(machineId), cancellationToken) > 0
            ? null
            : await PlaceAndRecordAsync(MachineRequestRules.StartingFrom(request, snapshot), snapshot.TenantId, machineId, snapshot, metadata, null, cancellationToken);
    }

    /// <summary>The caller's snapshot a machine is made from: ready, or the request is refused saying why.</summary>
    private async Task<Snapshot> SnapshotToStartFromAsync(string reference, Guid tenantId, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(reference, out var snapshotId))
        {
            throw Problems.Invalid("fromSnapshot", "must be the id of a snapshot (GET /api/v1/snapshots lists them)");
        }

        var snapshot = (await store.LoadAsync<Snapshot>(Snapshot.StreamOf(snapshotId), Snapshot.Evolve, cancellationToken)).State;
        return snapshot switch
        {
            null => throw Problems.Invalid("fromSnapshot", "no snapshot with that id exists for this tenant (GET /api/v1/snapshots lists them)"),
            _ when snapshot.TenantId != tenantId => throw Problems.Invalid("fromSnapshot", "no snapshot with that id exists for this tenant (GET /api/v1/snapshots lists them)"),
            { State: SnapshotStates.Ready } => snapshot,
            _ => throw Problems.Invalid("fromSnapshot", $"the snapshot is {snapshot.State}; a machine starts only from a ready one"),
        };
    }

    /// <summary>
    /// Places the machine (on its snapshot's host, if it starts from one) and records the placement and the request in one
    /// transaction, taking turns with other creations; the expected version on the host's stream settles races with other
    /// instances, and a lost one is placed again.
    /// </summary>
    private async Task<MachineAccepted> PlaceAndRecordAsync(
        CreateMachineRequest request, Guid tenantId, Guid machineId, Snapshot? snapshot, EventMetadata metadata, (string Key, string Hash)? idempotency, CancellationToken cancellationToken)
    {
        var kind = request.Kind!;
        var driver = request.Driver ?? MachineKinds.DefaultDriver(kind)!;
        var shape = MachineRequestRules.ShapeOf(request);
        // A snapshot keeps what its machine was made from, whatever the hosts offer now.
        var template = snapshot?.Template ?? await ResolveTemplateAsync(request.Template ?? MachineKinds.DefaultTemplate(kind), kind, cancellationToken);
        if (snapshot is null && kind == MachineKinds.MicroVm && await RootDiskMiBAsync(template, cancellationToken) is var root && shape.DiskMiB < root)
        {
            throw Problems.Invalid("diskMiB", $"must be at least {root} for template {template.Name}@{template.Version}: its micro-VMs run on a copy of its image's root");
        }
        var operationId = Guid.CreateVersion7();
        var name = request.Name ?? $"{kind}-{machineId.ToString("N")[^8..]}";
        using var turn = await turns.TakeAsync(cancellationToken);
        for (var attempt = 1; ; attempt++)
        {
            var (host, region, instanceType) = await PlaceAsync(driver, template, shape, request.Region, request.InstanceType, snapshot?.HostId, cancellationToken);
            var now = time.GetUtcNow();
            try
            {
                await using var session = await store.BeginSessionAsync(cancellationToken);
                session.Append(HostCatalog.StreamOf(host.Id), ExpectedVersion.Exactly(host.Version), [new MachinePlaced(host.Id, machineId, tenantId, shape, now)], metadata);
                var events = new List<object>
                {
                    new MachineRequested(machineId, tenantId, operationId, name, kind, driver, host.Id, template, shape,
                        request.Labels ?? new Dictionary<string, string>(), request.Command, request.Boot ?? "auto", now,
                        request.ExitNodeId is null ? null : Guid.Parse(request.ExitNodeId), region, instanceType, request.Probe,
                        MachineRequestRules.LifecycleOf(request.TtlSeconds, request.Idle), snapshot?.Id),
                };
                if (idempotency is var (key, hash))
                {
                    events.Add(new IdempotencyKeyRecorded(tenantId, key, hash, machineId, operationId));
                }

                session.Append(Machine.StreamOf(machineId), ExpectedVersion.NoStream, events, metadata);
                await session.CommitAsync(cancellationToken);
                return new MachineAccepted(machineId, operationId);
            }
            catch (WrongExpectedVersionException) when (attempt < PlacementAttempts)
            {
                // Another request took room on that host first: place again on what is left (apart, so the racers do not race again in step).
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(0, 4 * Math.Min(attempt, 10))), cancellationToken);
            }
            catch (PostgresException unique) when (unique.SqlState == PostgresErrorCodes.UniqueViolation && unique.ConstraintName == MachineCatalog.LiveNameIndex)
            {
                throw Problems.Conflict($"A machine named '{name}' exists already in this tenant; destroy it or choose another name.");
            }
            catch (PostgresException unique) when (unique.SqlState == PostgresErrorCodes.UniqueViolation && unique.ConstraintName == MachineCatalog.IdempotencyKeyIndex)
            {
                return await machines.FindByIdempotencyKeyAsync(tenantId, idempotency!.Value.Key, idempotency.Value.Hash, cancellationToken)
                    ?? throw new InvalidOperationException("The Idempotency-Key is taken, but by no request found.");
            }
        }
    }

    private async Task<TemplateRef> ResolveTemplateAsync(string? reference, string kind, CancellationToken cancellationToken)
    {
        if (reference is null)
        {
            throw Problems.Invalid("template", $"is required for a {kind} machine");
        }

        var (name, version) = reference.Split('@', 2) is [var n, var v] ? (n, (string?)v) : (reference, null);
        var known = (await hosts.TemplatesAsync(cancellationToken)).Where(t => t.Name == name && (version is null || t.Version == version)).ToList();
        if (known.Count == 0)
        {
            throw Problems.Invalid("template", $"no template '{reference}' is registered; GET /api/v1/templates lists them");
        }

        // A template built from an image serves sandboxes and micro-VMs alike.
        if (known[0].Kind != kind && !(known[0].Kind == "image" && kind is MachineKinds.Sandbox or MachineKinds.MicroVm))
        {
            throw Problems.Invalid("template", $"'{reference}' is a {known[0].Kind} template; a {kind} machine needs a {kind} template");
        }

        return new TemplateRef(known[0].Name, known[0].Version);
    }

    /// <summary>The smallest disk a micro-VM of <paramref name="template"/> can have, as the hosts holding it say (0: none needed).</summary>
    private async Task<int> RootDiskMiBAsync(TemplateRef template, CancellationToken cancellationToken) =>
        (await hosts.HostsAsync(cancellationToken)).SelectMany(h => h.Templates)
            .Where(t => t.Name == template.Name && t.Version == template.Version).Select(t => t.RootDiskMiB).DefaultIfEmpty(0).Max();

    /// <summary>The host the machine goes on: of those offering its driver (only <paramref name="snapshotHost"/>, for a machine made from a snapshot there), one it fits.</summary>
    private async Task<(HostView Host, string? Region, string? InstanceType)> PlaceAsync(
        string driver, TemplateRef template, MachineShape shape, string? region, string? instanceType, Guid? snapshotHost, CancellationToken cancellationToken)
    {
        var offering = (await hosts.HostsAsync(cancellationToken)).Where(h => h.Drivers.Any(d => d.Name == driver)).ToList();
        if (snapshotHost is { } kept)
        {
            offering = offering.Where(h => h.Id == kept).ToList();
            if (offering.Count == 0)
            {
                throw Problems.Invalid("fromSnapshot", $"the snapshot is kept on host {kept}, which offers no {driver} driver now");
            }
        }

        if (offering.Count == 0)
        {
            throw Problems.Invalid("driver", $"no host offers the {driver} driver");
        }

        var available = offering.Where(h => h.Drivers.First(d => d.Name == driver).Unavailable is null).ToList();
        if (available.Count == 0)
        {
            throw Problems.Invalid("driver", $"the {driver} driver can take no machine now: {offering[0].Drivers.First(d => d.Name == driver).Unavailable}");
        }

        var fitting = available.Where(h => (Fits(h.Drivers.First(d => d.Name == driver), shape) ?? CloudPlacement.Refusal(h.Drivers.First(d => d.Name == driver), region, instanceType, shape)) is null).ToList();
        if (fitting.Count == 0)
        {
            var limits = available.Select(h => h.Drivers.First(d => d.Name == driver)).First();
            var (field, message) = (Fits(limits, shape) ?? CloudPlacement.Refusal(limits, region, instanceType, shape))!.Value;
            throw Problems.Invalid(field, message);
        }

        // A machine made from a snapshot needs its snapshot, which is on the one host offered; its driver says if it needs more.
        var withTemplate = snapshotHost is not null ? fitting : fitting.Where(h => h.Templates.Any(t => t.Name == template.Name && t.Version == template.Version)).ToList();
        if (withTemplate.Count == 0)
        {
            throw Problems.Invalid("template", $"no host offering the {driver} driver holds {template.Name}@{template.Version}");
        }

        var guardrails = await hosts.GuardrailsAsync(cancellationToken);
        // A cloud machine runs in its cloud, not on the host that drives it: the host guardrails are not about it.
        var judged = withTemplate.Select(h => (Host: h, Refusal: h.Drivers.First(d => d.Name == driver).Kind == MachineKinds.Cloud ? null : h.Refusal(shape, guardrails))).ToList();
        // The host with the most memory left takes it.
        var chosen = judged.Where(j => j.Refusal is null).Select(j => j.Host).MaxBy(h => h.MemoryMiB - h.Used.MemoryMiB)
            ?? throw new ProblemException(ProblemTypes.PlacementRefused, StatusCodes.Status409Conflict,
                "No host can take this machine within the host guardrails.", string.Join("; ", judged.Select(j => j.Refusal)) + ".");
        var (chosenRegion, chosenType) = CloudPlacement.Choose(chosen.Drivers.First(d => d.Name == driver), region, instanceType, shape);
        return (chosen, chosenRegion, chosenType);
    }

    private static (string Field, string Message)? Fits(DriverCapacity driver, MachineShape shape)
    {
        if (shape.Vcpus > driver.MaxVcpus)
        {
            return ("vcpus", $"the {driver.Name} driver runs at most {driver.MaxVcpus} vCPUs");
        }

        if (shape.MemoryMiB < driver.MinMemoryMiB || shape.MemoryMiB > driver.MaxMemoryMiB)
        {
            return ("memoryMiB", $"the {driver.Name} driver takes {driver.MinMemoryMiB} to {driver.MaxMemoryMiB} MiB");
        }

        if (shape.DiskMiB > driver.MaxDiskMiB)
        {
            return ("diskMiB", driver.MaxDiskMiB == 0 ? $"the {driver.Name} driver attaches no disk" : $"the {driver.Name} driver attaches at most {driver.MaxDiskMiB} MiB");
        }

        return null;
    }
}
