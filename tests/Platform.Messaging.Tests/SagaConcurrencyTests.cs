using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.EventSourcing;
using Platform.Messaging.Sagas;
using Platform.Messaging.Tests.Racing;
using Platform.Testing;

namespace Platform.Messaging.Tests;

public sealed class SagaConcurrencyTests
{
    [Fact]
    public async Task Events_racing_for_one_saga_never_lose_an_update_and_racing_creations_make_one_instance()
    {
        const int laps = 60;
        await using var schema = PostgresSchema.Create("saga");
        await using var virtualHost = await RabbitVirtualHost.CreateAsync();
        await SchemaMigrator.ApplyAsync(schema.DataSource, schema.Name, SagaStore.Migrations);
        await using var bus = await TestBus.StartAsync(
            virtualHost,
            "saga-test",
            services => services.AddSingleton(new SagaStore(schema.DataSource, schema.Name)),
            configure => configure.AddSagaStateMachine<RaceStateMachine, RaceState>()
                .Endpoint(endpoint => endpoint.ConcurrentMessageLimit = 16)
                .PostgresRepository());
        var raceId = Guid.CreateVersion7();
        RaceStateMachine.ResetCounters();

        await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => bus.Bus.Publish(new RaceStarted(raceId))));
        await Eventually.TrueAsync(async () => await LoadAsync(schema, raceId) is not null, TimeSpan.FromSeconds(30), "the saga is created");
        await Task.WhenAll(Enumerable.Range(1, laps).Select(lap => bus.Bus.Publish(new LapCompleted(raceId, lap))));
        await Eventually.TrueAsync(async () => (await LoadAsync(schema, raceId))?.Laps.Count == laps, TimeSpan.FromSeconds(60), "every lap is recorded");

        var race = (await LoadAsync(schema, raceId))!;
        Assert.Equal(Enumerable.Range(1, laps), race.Laps.Order());
        Assert.Equal(1L, await schema.ScalarAsync<long>("SELECT count(*) FROM {schema}.sagas"));
        // One committed write per message: the creation, four ignored duplicate starts, every lap.
        Assert.Equal(5 + laps, await schema.ScalarAsync<int>("SELECT version FROM {schema}.sagas"));
        Assert.True(RaceStateMachine.RetriedLaps > 0, "laps raced each other (some lost the optimistic check and were retried)");
        Assert.DoesNotContain(await virtualHost.QueueNamesAsync(), name => name.EndsWith("_error", StringComparison.Ordinal));
    }

    private static async Task<RaceState?> LoadAsync(PostgresSchema schema, Guid raceId)
    {
        await using var command = schema.DataSource.CreateCommand($"SELECT state FROM {schema.Name}.sagas WHERE correlation_id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = raceId });
        return await command.ExecuteScalarAsync() is string json
            ? System.Text.Json.JsonSerializer.Deserialize<RaceState>(json, PlatformJson.Options)
            : null;
    }
}
