using System.CommandLine;

namespace Platform.Cli;

public sealed partial class Plat
{
    /// <summary>
    /// A bash completion that asks plat itself (System.CommandLine's <c>[suggest:position]</c> directive, what
    /// dotnet-suggest calls): <c>source &lt;(plat completion bash)</c>.
    /// </summary>
    private const string BashCompletion = """
        # plat's bash completion: source <(plat completion bash), or save it in /etc/bash_completion.d/plat
        _plat_complete() {
          local IFS=$'\n'
          COMPREPLY=($(plat "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null | grep -- "^${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _plat_complete plat
        """;

    private Command CompletionCommand()
    {
        var shell = new Argument<string>("shell") { Description = "bash" };
        shell.AcceptOnlyFromAmong("bash");
        var command = new Command("completion", "Print a shell completion script: source <(plat completion bash)") { shell };
        command.SetAction(async (_, _) =>
        {
            await output.WriteLineAsync(BashCompletion);
            return ExitCodes.Ok;
        });
        return command;
    }
}
