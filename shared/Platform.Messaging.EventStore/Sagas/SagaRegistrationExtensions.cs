using MassTransit;
using MassTransit.Configuration;
using MassTransit.Saga;

namespace Platform.Messaging.Sagas;

public static class SagaRegistrationExtensions
{
    /// <summary>Keeps the saga's instances in the service's PostgreSQL schema (see <see cref="SagaStore"/>).</summary>
    public static ISagaRegistrationConfigurator<TSaga> PostgresRepository<TSaga>(this ISagaRegistrationConfigurator<TSaga> configurator)
        where TSaga : class, ISagaVersion
    {
        configurator.Repository(repository =>
            repository.RegisterSagaRepository<TSaga, SagaStore, SagaConsumeContextFactory<SagaStore, TSaga>, PostgresSagaRepositoryContextFactory<TSaga>>());
        return configurator;
    }
}
