using Engine;
using Engine.Cli;
using Engine.Cli.Options;

return CliMain.Run(args, CliContext.FromConsole());

namespace Engine.Cli
{
    /// <summary>The `engine` command: finds the command named by the first words and maps failures to exit codes.</summary>
    public static class CliMain
    {
        public static IReadOnlyList<ICliCommand> Commands { get; } = typeof(CliMain).Assembly.GetTypes()
            .Where(t => typeof(ICliCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (ICliCommand)Activator.CreateInstance(t)!)
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToList();

        /// <summary>Exit codes: 0 success, 1 a failure the message explains (bad input, I/O), 2 a malformed command line, 3 an internal error,
        /// 130 / 143 a run stopped by SIGINT / SIGTERM (128 + the signal, as a shell reports it).</summary>
        public static int Run(string[] args, CliContext context)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
            {
                PrintHelp(args.Length == 0 ? context.Err : context.Out);
                return args.Length == 0 ? 2 : 0;
            }
            // Longest match first so "data inspect" wins over a hypothetical "data".
            var command = Commands
                .OrderByDescending(c => c.Name.Split(' ').Length)
                .FirstOrDefault(c => c.Name.Split(' ').SequenceEqual(args.Take(c.Name.Split(' ').Length)));
            if (command is null)
            {
                context.Err.WriteLine($"error: unknown command '{string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')).Take(2))}'");
                PrintHelp(context.Err);
                return 2;
            }
            var rest = args.Skip(command.Name.Split(' ').Length).ToArray();
            if (rest.Contains("--help") || rest.Contains("-h"))
            {
                context.Out.Write(command.Help());
                return 0;
            }
            try
            {
                return command.Run(rest, context);
            }
            catch (UsageException e)
            {
                context.Err.WriteLine($"error: {e.Message}");
                context.Err.WriteLine($"usage: {command.Usage}  (`engine {command.Name} --help` lists the options)");
                return 2;
            }
            catch (Engine.Training.TrainingStoppedException e)
            {
                context.Err.WriteLine(e.Message);
                return Engine.Training.StopSignal.ExitCodeFor(e.Signal);
            }
            catch (EngineException e)
            {
                context.Err.WriteLine($"error: {e.Message}");
                return 1;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                context.Err.WriteLine($"error: {e.Message}");
                return 1;
            }
            catch (Exception e)
            {
                context.Err.WriteLine($"internal error ({e.GetType().Name}): {e.Message}");
                if (Environment.GetEnvironmentVariable("ENGINE_DEBUG") == "1") context.Err.WriteLine(e);
                return 3;
            }
        }

        static void PrintHelp(TextWriter w)
        {
            w.WriteLine("usage: engine <command> [options]\n\ncommands:");
            foreach (var c in Commands) w.WriteLine($"  {c.Name,-18} {c.Summary}");
            w.WriteLine("\n`engine <command> --help` shows a command's options.");
        }
    }
}
