using System.CommandLine;
using FlexOlmo.Serving;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo serve --model DIR</c>: an OpenAI-compatible server with per-request expert masks and live opt-out.</summary>
internal static class ServeCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "Model folder (a composed FlexOlmo model, or any OLMo-2/FlexOlmo checkpoint).", Required = true };
    private static readonly Option<string> Host = new("--host") { Description = "Address to listen on.", DefaultValueFactory = _ => "127.0.0.1" };
    private static readonly Option<int> Port = new("--port") { Description = "Port to listen on.", DefaultValueFactory = _ => 8000 };
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<int> MaxBatch = new("--max-batch") { Description = "Sequences decoded together.", DefaultValueFactory = _ => 16 };
    private static readonly Option<int> MaxQueue = new("--max-queue") { Description = "Waiting sequences before requests get 429.", DefaultValueFactory = _ => 64 };
    private static readonly Option<int> MaxPromptTokens = new("--max-prompt-tokens") { Description = "Longest prompt accepted.", DefaultValueFactory = _ => 4096 };
    private static readonly Option<int> MaxTokens = new("--max-tokens") { Description = "Largest max_tokens accepted.", DefaultValueFactory = _ => 1024 };
    private static readonly Option<string?> ApiKeys = new("--api-keys") { Description = "JSON file of API keys and the experts each may use (owners' consent)." };
    private static readonly Option<string?> Registry = RegistryOptions.Registry();
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();
    private static readonly Option<double> RevocationPoll = new("--revocation-poll") { Description = "Seconds between revocation checks in --registry.", DefaultValueFactory = _ => 60 };
    private static readonly Option<double?> RevocationGrace = new("--revocation-grace")
    {
        Description = "Seconds without a successful revocation check after which every published expert is suspended (default: 10 poll intervals, at least 120).",
    };

    public static Command Create()
    {
        var command = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API; every request may choose its experts.")
        {
            Model, Host, Port, Device, DType, MaxBatch, MaxQueue, MaxPromptTokens, MaxTokens, ApiKeys, Registry, Connection, RevocationPoll, RevocationGrace,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: true, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        var options = new ServerOptions
        {
            Model = context.Get(Model),
            Host = context.Get(Host),
            Port = context.Get(Port),
            Device = context.Get(Device),
            DType = context.Get(DType),
            MaxBatch = context.Get(MaxBatch),
            MaxQueue = context.Get(MaxQueue),
            MaxPromptTokens = context.Get(MaxPromptTokens),
            MaxTokens = context.Get(MaxTokens),
            ApiKeys = context.Get(ApiKeys),
            Registry = context.ParseResult.GetValue(Registry),
            ConnectionString = context.ParseResult.GetValue(Connection),
            RevocationPollSeconds = context.Get(RevocationPoll),
            RevocationGraceSeconds = context.ParseResult.GetValue(RevocationGrace),
        };
        await using var app = FlexOlmoServer.Build(options);
        await app.StartAsync(context.CancellationToken).ConfigureAwait(false);
        var host = (ModelHost)app.Services.GetService(typeof(ModelHost))!;
        context.Output.WriteLine($"serving {host.Name} ({host.Model.Config.ModelType}, {host.NumExperts} experts: {string.Join(", ", host.Experts.Select(e => e.Name))}) on http://{options.Host}:{options.Port}/v1");
        context.Output.WriteLine($"try: curl http://{options.Host}:{options.Port}/v1/completions -H 'Content-Type: application/json' -d '{{\"prompt\": \"Hello\", \"max_tokens\": 16, \"temperature\": 0{(host.Experts.Count > 1 ? $", \"experts\": {{\"exclude\": [\"{host.Experts[1].Name}\"]}}" : string.Empty)}}}'");
        try
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        context.Output.WriteLine("stopped");
        return 0;
    }
}
