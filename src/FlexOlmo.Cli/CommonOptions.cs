using System.CommandLine;
using FlexOlmo.Core.Native;

namespace FlexOlmo.Cli;

/// <summary>Options several commands share, defined once.</summary>
internal static class CommonOptions
{
    public static readonly Option<string?> LibTorch = new("--libtorch")
    {
        Description = $"Folder of an existing libtorch to load (for example PyTorch's torch/lib, for CUDA). Also ${TorchNative.LibTorchEnvironmentVariable}.",
        Recursive = true,
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "Where to compute: cpu, cuda or cuda:N.",
        DefaultValueFactory = _ => "cpu",
    };

    public static Option<string> DType() => new("--dtype")
    {
        Description = "Compute dtype: float32, bfloat16, or auto (the checkpoint's dtype).",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string?> TokenCache() => new("--token-cache")
    {
        Description = "Folder for tokenised copies of text data (default: ~/.cache/flexolmo/tokens, or $XDG_CACHE_HOME/flexolmo/tokens).",
    };

    public static Option<bool> Json() => new("--json") { Description = "Print JSON instead of text." };

    public static Option<string?> ExcludeExperts() => new("--exclude-experts")
    {
        Description = "Experts that may not take part: comma-separated indices or names (0 is the public expert).",
    };

    public static Option<string?> IncludeExperts() => new("--include-experts")
    {
        Description = "The only experts that may take part: comma-separated indices or names.",
    };
}
