using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Templates built from OCI image archives, offered by a host agent and used through the gateway.</summary>
[Collection(StackCollection.Name)]
public sealed class ImageTemplateTests(PlatformStack stack)
{
    [Fact]
    public async Task An_oci_archive_built_in_the_test_becomes_a_template_whose_sandboxes_and_micro_vms_run_its_entrypoint()
    {
        await using var image = await TestImageTemplate.BuildAsync(TestEnvironment.MicroVmTemplates);
        // The running agent finds the new template on its shelf within seconds: no restart.
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(90);
        await Eventually.TrueAsync(async () => (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/templates")).EnumerateArray()
            .Any(t => t.GetProperty("name").GetString() == image.Name && t.GetProperty("kind").GetString() == "image"), TimeSpan.FromSeconds(60), "the host offers the template");

        var sandbox = await tenant.CreateMachineAsync(new { kind = "sandbox", template = image.Name, vcpus = 1, memoryMiB = 64 });
        var vm = await tenant.CreateMachineAsync(new { kind = "microvm", template = image.Name, vcpus = 1, memoryMiB = 128, diskMiB = 128 });
        await tenant.WaitForMachineAsync(sandbox, "running");
        await tenant.WaitForMachineAsync(vm, "running");
        foreach (var machine in new[] { sandbox, vm })
        {
            await Eventually.TrueAsync(async () => (await tenant.GetStringAsync($"/api/v1/machines/{machine}/logs")).Contains(TestImageTemplate.Greeting, StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), $"machine {machine} runs the image's entrypoint");
        }

        var inVm = await tenant.ExecAsync(vm, new { command = new[] { "sh", "-c", "echo $GREETING; ls /app" } });
        Assert.Equal("hello\nrun\n", inVm.GetProperty("stdout").GetString());
        // A disk smaller than the image's root is no disk for it: refused at once, saying how much it needs.
        var tooSmall = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "microvm", template = image.Name, vcpus = 1, memoryMiB = 128, diskMiB = 16 });
        var refused = await Problems.AssertAsync(tooSmall, System.Net.HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.StartsWith("must be at least ", refused.GetProperty("errors").GetProperty("diskMiB")[0].GetString(), StringComparison.Ordinal);
        foreach (var machine in new[] { sandbox, vm })
        {
            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{machine}");
            await tenant.WaitForMachineAsync(machine, "destroyed");
        }
    }
}
