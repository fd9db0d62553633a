using Converge.Work;
using DataSyncSample;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services
    .AddConvergeWork(options =>
    {
        options.DatabasePath = Path.Combine(AppContext.BaseDirectory, "work.db");
        options.DebugMode = true; // log every start and finish, like the plugin's isInDebugMode
    })
    .AddWorker<DataSyncTask>()
    .ExecuteTask(CallbackDispatcher.ExecuteTask);

using var host = builder.Build();
await host.StartAsync();

var workManager = host.Services.GetRequiredService<IWorkManager>();
Console.WriteLine($"dataSyncTask: {await ScheduleDataSyncTask.RunAsync(workManager)}");
await workManager.EnqueueAsync(new OneTimeWorkRequestBuilder(CallbackDispatcher.CleanupTask)
    .SetInputData(WorkData.From(("days", 7)))
    .Build());

await host.WaitForShutdownAsync();
