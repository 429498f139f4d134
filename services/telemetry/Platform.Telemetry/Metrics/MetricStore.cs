using Npgsql;
using NpgsqlTypes;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;

namespace Platform.Telemetry.Metrics;

/// <summary>One bucket of a series, aggregated: averages weighted by the time or samples they cover, maxima, and byte totals.</summary>
public sealed record MetricBucket(
    DateTimeOffset At, int Samples, double CpuCores, double CpuCoresMax, long MemoryBytes, long MemoryBytesMax, long MemoryLimitBytes,
    int? Processes, long DiskBytes, long NetworkRxBytes, long NetworkTxBytes);

/// <summary>
/// The metric series in telemetry's schema, one table for every machine's and host's: the agents' samples as they came
/// (resolution 0), and their 1-minute and 1-hour rollups. Each row holds sums and maxima, so that rolling up and
/// aggregating over any step are exact: a raw row is added to its minute and its hour once (it is marked
/// <c>rolled</c> in the same statement), and each resolution expires on its own.
/// </summary>
public sealed class MetricStore(NpgsqlDataSource dataSource)
{
    private const int RollupBatch = 20_000;

    public static SchemaMigration Migration { get; } = new("metrics", 1, """
        CREATE TABLE {schema}.metric_samples (
            subject_id uuid NOT NULL,
            subject text NOT NULL,
            tenant_id uuid,
            host_id uuid NOT NULL,
            resolution int NOT NULL,
            bucket timestamptz NOT NULL,
            samples int NOT NULL,
            seconds float8 NOT NULL,
            cpu_core_seconds float8 NOT NULL,
            cpu_cores_max float8 NOT NULL,
            memory_bytes_sum float8 NOT NULL,
            memory_bytes_max bigint NOT NULL,
            memory_limit_bytes bigint NOT NULL,
            processes_max int,
            disk_bytes_max bigint NOT NULL,
            network_rx_bytes bigint NOT NULL,
            network_tx_bytes bigint NOT NULL,
            rolled boolean NOT NULL DEFAULT false,
            PRIMARY KEY (subject_id, resolution, bucket)
        );
        CREATE INDEX ON {schema}.metric_samples (bucket) WHERE resolution = 0 AND NOT rolled;
        CREATE INDEX ON {schema}.metric_samples (resolution, bucket);
        """);

    /// <summary>Records a report's samples as raw rows; a report delivered twice is recorded once (same subject, same time).</summary>
    public async Task RecordAsync(MachineMetricsReported report, CancellationToken cancellationToken)
    {
        var rows = report.Machines
            .Select(m => new Row(m.MachineId, "machine", m.TenantId, m.CpuCores, m.MemoryBytes, m.MemoryLimitBytes, m.Processes, m.DiskBytes, m.NetworkRxBytes, m.NetworkTxBytes))
            .Append(new Row(report.HostId, "host", null, report.Host.CpuCores, report.Host.MemoryBytes, report.Host.MemoryTotalBytes, report.Host.Machines, 0, 0, 0))
            .ToArray();
        await using var command = dataSource.CreateCommand($"""
            INSERT INTO {TelemetryService.Schema}.metric_samples (subject_id, subject, tenant_id, host_id, resolution, bucket, samples, seconds, cpu_core_seconds, cpu_cores_max,
                memory_bytes_sum, memory_bytes_max, memory_limit_bytes, processes_max, disk_bytes_max, network_rx_bytes, network_tx_bytes)
            SELECT subject_id, subject, tenant_id, $1, 0, $2, 1, $3, cpu * $3, cpu, memory, memory, memory_limit, processes, disk, rx, tx
            FROM unnest($4::uuid[], $5::text[], $6::uuid[], $7::float8[], $8::bigint[], $9::bigint[], $10::int[], $11::bigint[], $12::bigint[], $13::bigint[])
                AS s(subject_id, subject, tenant_id, cpu, memory, memory_limit, processes, disk, rx, tx)
            ON CONFLICT DO NOTHING
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = report.HostId });
        command.Parameters.Add(new NpgsqlParameter { Value = report.SampledAt });
        command.Parameters.Add(new NpgsqlParameter { Value = report.IntervalSeconds });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Subject).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Kind).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Tenant).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.CpuCores).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.MemoryBytes).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.MemoryLimitBytes).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Processes).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.DiskBytes).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.NetworkRxBytes).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.NetworkTxBytes).ToArray() });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Adds every raw row not rolled up yet to its minute and its hour, then deletes each resolution's rows older than
    /// its retention. One instance at a time (a transaction-scoped advisory lock). Returns how many raw rows it rolled.
    /// </summary>
    public async Task<int> RollUpAndExpireAsync(DateTimeOffset now, MetricsOptions options, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var locked = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(hashtextextended('telemetry-metrics-rollup', 0))", connection, transaction))
        {
            if (!(bool)(await locked.ExecuteScalarAsync(cancellationToken))!)
            {
                return 0;
            }
        }

        var rolled = 0;
        int batch;
        do
        {
            await using var rollup = new NpgsqlCommand($"""
                WITH fresh AS (
                    UPDATE {TelemetryService.Schema}.metric_samples s SET rolled = true
                    WHERE (s.subject_id, s.resolution, s.bucket) IN (
                        SELECT subject_id, resolution, bucket FROM {TelemetryService.Schema}.metric_samples WHERE resolution = 0 AND NOT rolled LIMIT {RollupBatch})
                    RETURNING s.*
                ), minutes AS (
                    {Fold("fresh", 60)}
                ), hours AS (
                    {Fold("fresh", 3600)}
                )
                SELECT count(*) FROM fresh
                """, connection, transaction);
            batch = (int)(long)(await rollup.ExecuteScalarAsync(cancellationToken))!;
            rolled += batch;
        }
        while (batch == RollupBatch);

        await using (var expire = new NpgsqlCommand($"""
            DELETE FROM {TelemetryService.Schema}.metric_samples
            WHERE (resolution = 0 AND bucket < $1 AND rolled) OR (resolution = 60 AND bucket < $2) OR (resolution = 3600 AND bucket < $3)
            """, connection, transaction))
        {
            expire.Parameters.Add(new NpgsqlParameter { Value = now - options.RawRetention });
            expire.Parameters.Add(new NpgsqlParameter { Value = now - options.MinuteRetention });
            expire.Parameters.Add(new NpgsqlParameter { Value = now - options.HourRetention });
            await expire.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return rolled;
    }

    /// <summary>A series of <paramref name="subjectId"/> at <paramref name="resolution"/>, aggregated over buckets of <paramref name="step"/>; only <paramref name="tenantId"/>'s rows unless null.</summary>
    public async Task<IReadOnlyList<MetricBucket>> ReadAsync(
        Guid subjectId, Guid? tenantId, MetricResolution resolution, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT date_bin($6, bucket, timestamptz 'epoch') AS at, sum(samples)::int, sum(seconds), sum(cpu_core_seconds), max(cpu_cores_max),
                sum(memory_bytes_sum), max(memory_bytes_max), max(memory_limit_bytes), max(processes_max), max(disk_bytes_max),
                sum(network_rx_bytes)::bigint, sum(network_tx_bytes)::bigint
            FROM {TelemetryService.Schema}.metric_samples
            WHERE subject_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) AND resolution = $3 AND bucket >= $4 AND bucket < $5
            GROUP BY 1
            ORDER BY 1
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = subjectId });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = resolution.Seconds });
        command.Parameters.Add(new NpgsqlParameter { Value = from });
        command.Parameters.Add(new NpgsqlParameter { Value = to });
        command.Parameters.Add(new NpgsqlParameter { Value = step, NpgsqlDbType = NpgsqlDbType.Interval });
        var buckets = new List<MetricBucket>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var samples = reader.GetInt32(1);
            var seconds = reader.GetDouble(2);
            buckets.Add(new MetricBucket(
                reader.GetFieldValue<DateTimeOffset>(0), samples,
                Math.Round(seconds > 0 ? reader.GetDouble(3) / seconds : 0, 4), reader.GetDouble(4),
                (long)(reader.GetDouble(5) / Math.Max(1, samples)), reader.GetInt64(6), reader.GetInt64(7),
                reader.IsDBNull(8) ? null : reader.GetInt32(8), reader.GetInt64(9), reader.GetInt64(10), reader.GetInt64(11)));
        }

        return buckets;
    }

    private sealed record Row(
        Guid Subject, string Kind, Guid? Tenant, double CpuCores, long MemoryBytes, long MemoryLimitBytes, int? Processes, long DiskBytes, long NetworkRxBytes, long NetworkTxBytes);

    /// <summary>An INSERT that adds the rows of <paramref name="source"/> to their buckets of <paramref name="seconds"/>.</summary>
    private static string Fold(string source, int seconds) => $"""
        INSERT INTO {TelemetryService.Schema}.metric_samples AS t (subject_id, subject, tenant_id, host_id, resolution, bucket, samples, seconds, cpu_core_seconds, cpu_cores_max,
            memory_bytes_sum, memory_bytes_max, memory_limit_bytes, processes_max, disk_bytes_max, network_rx_bytes, network_tx_bytes)
        SELECT subject_id, subject, tenant_id, host_id, {seconds}, date_bin(interval '{seconds} seconds', bucket, timestamptz 'epoch'),
            sum(samples), sum(seconds), sum(cpu_core_seconds), max(cpu_cores_max), sum(memory_bytes_sum), max(memory_bytes_max), max(memory_limit_bytes),
            max(processes_max), max(disk_bytes_max), sum(network_rx_bytes), sum(network_tx_bytes)
        FROM {source}
        GROUP BY subject_id, subject, tenant_id, host_id, date_bin(interval '{seconds} seconds', bucket, timestamptz 'epoch')
        ON CONFLICT (subject_id, resolution, bucket) DO UPDATE SET
            samples = t.samples + excluded.samples, seconds = t.seconds + excluded.seconds, cpu_core_seconds = t.cpu_core_seconds + excluded.cpu_core_seconds,
            cpu_cores_max = greatest(t.cpu_cores_max, excluded.cpu_cores_max), memory_bytes_sum = t.memory_bytes_sum + excluded.memory_bytes_sum,
            memory_bytes_max = greatest(t.memory_bytes_max, excluded.memory_bytes_max), memory_limit_bytes = greatest(t.memory_limit_bytes, excluded.memory_limit_bytes),
            processes_max = greatest(t.processes_max, excluded.processes_max), disk_bytes_max = greatest(t.disk_bytes_max, excluded.disk_bytes_max),
            network_rx_bytes = t.network_rx_bytes + excluded.network_rx_bytes, network_tx_bytes = t.network_tx_bytes + excluded.network_tx_bytes
        """;
}
