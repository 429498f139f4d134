using System.Diagnostics;

namespace Platform.Testing;

/// <summary>
/// A template built from an image the test makes: busybox and <c>/app/run</c>, which prints
/// <c>app says $GREETING from $(pwd)</c> and then sleeps, as its entrypoint, with <c>GREETING=hello</c> and <c>/app</c> as
/// its working directory. The image is written as an OCI archive (with umoci, no registry or engine), and
/// <c>build-image-template</c> turns it into a template in the templates directory given; disposing removes the template
/// and the archive.
/// </summary>
public sealed class TestImageTemplate : IAsyncDisposable
{
    public const string Greeting = "app says hello from /app";

    private readonly string _work;

    private TestImageTemplate(string name, string templates, string directory, string work)
    {
        Name = name;
        TemplatesDirectory = templates;
        Directory = directory;
        _work = work;
    }

    public string Name { get; }

    public string TemplatesDirectory { get; }

    /// <summary>The built version's folder (what <c>current</c> points at).</summary>
    public string Directory { get; }

    /// <summary>Where the image's OCI archive is.</summary>
    public string Archive => Path.Combine(_work, "app-oci.tar");

    public static async Task<TestImageTemplate> BuildAsync(string templatesDirectory)
    {
        var name = "pmt-app-" + Guid.NewGuid().ToString("N")[..8];
        var work = System.IO.Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), name)).FullName;
        try
        {
            await RunAsync("/bin/bash", "-c", """
                set -euo pipefail
                cd "$1"
                mkdir -p root/bin root/app
                cp /bin/busybox root/bin/
                for applet in sh cat echo ls sleep df; do ln -s busybox "root/bin/$applet"; done
                printf '#!/bin/sh\necho "app says $GREETING from $(pwd)"\nexec sleep 3600\n' >root/app/run
                chmod 755 root/app/run
                umoci init --layout layout
                umoci new --image layout:app
                umoci insert --image layout:app root /
                umoci config --image layout:app --config.entrypoint /app/run --config.env GREETING=hello --config.workingdir /app
                tar -C layout -cf app-oci.tar .
                """, "build-test-image", work);
            var built = await RunAsync(Path.Combine(RepositoryRoot.Path, "services", "provisioning", "templates", "build-image-template"), templatesDirectory, name, Path.Combine(work, "app-oci.tar"));
            return new TestImageTemplate(name, templatesDirectory, built.Trim(), work);
        }
        catch
        {
            foreach (var directory in new[] { Path.Combine(templatesDirectory, name), work }.Where(System.IO.Directory.Exists))
            {
                System.IO.Directory.Delete(directory, recursive: true);
            }

            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        foreach (var directory in new[] { Path.Combine(TemplatesDirectory, Name), _work }.Where(System.IO.Directory.Exists))
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }

        return ValueTask.CompletedTask;
    }

    private static async Task<string> RunAsync(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(program)} failed ({process.ExitCode}): {await errors}");
        }

        return await output;
    }
}
