using Microsoft.Extensions.Options;
using Serving.Server;
using Serving.Server.Hosting;

if (args is [HealthCheckCommand.Verb, .. var probeArgs])
    return await HealthCheckCommand.RunAsync(probeArgs, Console.Error);
if (StartupArguments.WantsHelp(args))
{
    Console.Out.Write(StartupArguments.Help());
    return 0;
}

try
{
    await ServingApp.Build(args).RunAsync();
}
catch (StartupArgumentsException e)
{
    foreach (string problem in e.Problems)
        Console.Error.WriteLine($"serving: {problem}");
    return 2;
}
catch (OptionsValidationException e)
{
    // Options are validated at start-up: a bad setting (a model path that is not a folder, a slot count of zero) is the
    // operator's input, so it ends the process with a message naming it and exit code 2, not as an unhandled exception
    // (SIGABRT, 134, the message buried in a stack trace).
    Console.Error.WriteLine($"serving: invalid configuration: {string.Join("; ", e.Failures)}");
    return 2;
}

return 0;
