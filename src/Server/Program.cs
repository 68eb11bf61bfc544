using Serving.Server;

ServingApp.Build(args).Run();
