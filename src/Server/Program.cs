using Serving.Server;
using Serving.Server.Hosting;

if (args is [HealthCheckCommand.Verb, .. var probeArgs])
    return await HealthCheckCommand.RunAsync(probeArgs, Console.Error);
await ServingApp.Build(args).RunAsync();
return 0;
