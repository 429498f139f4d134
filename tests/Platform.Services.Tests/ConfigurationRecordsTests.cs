using Microsoft.Extensions.Configuration;
using Platform.Contracts.Tenancy;
using Platform.Hosting;

namespace Platform.Services.Tests;

public sealed class ConfigurationRecordsTests
{
    [Fact]
    public void A_record_read_from_configuration_takes_what_is_set_and_the_default_for_the_rest()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Guardrails:MaxMachinesPerHost"] = "7",
            ["Guardrails:MaxVcpuOvercommit"] = "1.5",
        }).Build();

        var read = ConfigurationRecords.Read(configuration.GetSection("Guardrails"), HostGuardrails.Default);

        Assert.Equal(HostGuardrails.Default with { MaxMachinesPerHost = 7, MaxVcpuOvercommit = 1.5 }, read);
        Assert.Equal(HostGuardrails.Default, ConfigurationRecords.Read(configuration.GetSection("Absent"), HostGuardrails.Default));
    }
}
