using System.Reflection;
using Engine;
using Engine.Cli;

return CliMain.Run(args);

namespace Engine.Cli
{
    public static class CliMain
    {
        public static IReadOnlyList<ICliCommand> Commands { get; } = typeof(CliMain).Assembly.GetTypes()
            .Where(t => typeof(ICliCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (ICliCommand)Activator.CreateInstance(t)!)
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToList();

        public static int Run(string[] args)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
            {
                PrintHelp();
                return args.Length == 0 ? 2 : 0;
            }
            // Longest match first so "data inspect" wins over a hypothetical "data".
            var command = Commands
                .OrderByDescending(c => c.Name.Split(' ').Length)
                .FirstOrDefault(c => c.Name.Split(' ').SequenceEqual(args.Take(c.Name.Split(' ').Length)));
            if (command is null)
            {
                Console.Error.WriteLine($"error: unknown command '{string.Join(' ', args.TakeWhile(a => !a.StartsWith("-")).Take(2))}'");
                PrintHelp(Console.Error);
                return 2;
            }
            var rest = args.Skip(command.Name.Split(' ').Length).ToArray();
            if (rest.Contains("--help") || rest.Contains("-h"))
            {
                Console.WriteLine($"usage: engine {command.Usage}\n\n{command.Summary}");
                return 0;
            }
            try
            {
                return command.Run(new CliArgs(command.Name, rest));
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                Console.Error.WriteLine($"usage: engine {command.Usage}");
                return 2;
            }
            catch (EngineException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"internal error ({e.GetType().Name}): {e.Message}");
                if (Environment.GetEnvironmentVariable("ENGINE_DEBUG") == "1") Console.Error.WriteLine(e);
                return 3;
            }
        }

        static void PrintHelp(TextWriter? w = null)
        {
            w ??= Console.Out;
            w.WriteLine("usage: engine <command> [options]\n\ncommands:");
            foreach (var c in Commands) w.WriteLine($"  {c.Name,-18} {c.Summary}");
            w.WriteLine("\n`engine <command> --help` shows a command's options.");
        }
    }
}
