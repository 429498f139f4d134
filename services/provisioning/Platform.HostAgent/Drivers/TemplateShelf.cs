using Platform.Provisioning.Drivers.MicroVm;
using Platform.Provisioning.Drivers.Templates;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// The templates built in the agent's templates folder (<c>{TemplatesPath}/{name}/current</c>): micro-VM templates (the
/// default one, and those built from images) and the templates built from images that sandboxes run on. Read when the
/// agent starts and again every few seconds (<see cref="TemplateShelfWatch"/>), so that a template an operator builds is
/// offered without a restart. A template that cannot be read is left out, said once.
/// </summary>
public sealed class TemplateShelf(string templatesPath, ILogger logger)
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(5);

    private readonly HashSet<string> _reported = [];
    private volatile Shelf _shelf = new([], []);

    public IReadOnlyList<MicroVmTemplate> MicroVm => _shelf.MicroVm;

    public IReadOnlyList<ImageTemplate> Images => _shelf.Images;

    public static TemplateShelf Read(string templatesPath, ILogger logger)
    {
        var shelf = new TemplateShelf(templatesPath, logger);
        shelf.Refresh();
        if (shelf.MicroVm.All(t => t.Image is not null))
        {
            logger.LogWarning("No micro-VM template in {TemplatesPath}: build one with services/provisioning/templates/build-microvm-template", templatesPath);
        }

        return shelf;
    }

    public void Refresh()
    {
        var microVm = new List<MicroVmTemplate>();
        var images = new List<ImageTemplate>();
        foreach (var current in Directory.Exists(templatesPath) ? Directory.EnumerateDirectories(templatesPath).Select(d => Path.Combine(d, "current")).Order(StringComparer.Ordinal).ToList() : [])
        {
            if (!File.Exists(Path.Combine(current, "template.json")))
            {
                continue;
            }

            try
            {
                var template = MicroVmTemplate.Load(current);
                microVm.Add(template);
                if (template.Image is { } image)
                {
                    images.Add(image);
                }
            }
            catch (Exception exception) when (exception is IOException or InvalidDataException or System.Text.Json.JsonException)
            {
                var which = new DirectoryInfo(current).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? current;
                lock (_reported)
                {
                    if (_reported.Add(which))
                    {
                        logger.LogError("The template in {Directory} cannot be used: {Reason}", which, exception.Message);
                    }
                }
            }
        }

        _shelf = new Shelf(microVm, images);
    }

    private sealed record Shelf(IReadOnlyList<MicroVmTemplate> MicroVm, IReadOnlyList<ImageTemplate> Images);
}

/// <summary>Reads the template shelf again every few seconds while the agent runs.</summary>
public sealed class TemplateShelfWatch(TemplateShelf shelf) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(TemplateShelf.RefreshInterval, stoppingToken);
                shelf.Refresh();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
