using FlexOlmo.Core.Errors;
using TorchSharp;

namespace FlexOlmo.Core.Native;

/// <summary>Devices and dtypes as users name them (<c>--device cpu|cuda|cuda:N</c>, <c>--dtype float32|bfloat16</c>).</summary>
public static class TorchRuntime
{
    /// <summary>Loads the native libraries with the defaults (the environment variable, then the bundled libtorch) if nothing has yet.</summary>
    public static void EnsureInitialized() => TorchNative.Initialize();

    /// <summary>Parses a device name and checks that this process can use it.</summary>
    public static torch.Device ResolveDevice(string? spec)
    {
        EnsureInitialized();
        var text = string.IsNullOrWhiteSpace(spec) ? "cpu" : spec.Trim().ToLowerInvariant();
        if (text == "cpu")
        {
            return torch.CPU;
        }

        if (text != "cuda" && !text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            throw new DeviceException($"--device '{spec}' is not a device; use cpu, cuda or cuda:N.");
        }

        var index = 0;
        if (text.Length > 5 && (!int.TryParse(text.AsSpan(5), out index) || index < 0))
        {
            throw new DeviceException($"--device '{spec}': the GPU index must be a non-negative integer (cuda:0, cuda:1, ...).");
        }

        bool available;
        try
        {
            available = torch.TryInitializeDeviceType(DeviceType.CUDA);
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or DllNotFoundException)
        {
            available = false;
        }

        if (!available)
        {
            throw new DeviceException(
                $"--device {text}: CUDA is not available in this process (libtorch from {TorchNative.LibTorchDirectory} is CPU-only or no GPU is visible). " +
                $"Use --device cpu, or point --libtorch (or {TorchNative.LibTorchEnvironmentVariable}) at the torch/lib folder of a CUDA-enabled PyTorch.");
        }

        var count = torch.cuda.device_count();
        if (index >= count)
        {
            throw new DeviceException($"--device {text}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1}).");
        }

        return torch.device(DeviceType.CUDA, index);
    }

    /// <summary>Parses a compute dtype; <c>auto</c> (or null) picks <paramref name="storageDType"/> where it is float32 or bfloat16, else float32.</summary>
    public static torch.ScalarType ResolveDType(string? spec, string? storageDType = null)
    {
        var text = string.IsNullOrWhiteSpace(spec) ? "auto" : spec.Trim().ToLowerInvariant();
        return text switch
        {
            "float32" or "fp32" or "f32" => torch.ScalarType.Float32,
            "bfloat16" or "bf16" => torch.ScalarType.BFloat16,
            "auto" => storageDType?.ToLowerInvariant() is "bfloat16" or "bf16" ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32,
            _ => throw new DeviceException($"--dtype '{spec}' is not supported; use float32 or bfloat16."),
        };
    }

    /// <summary>The name users write for a dtype.</summary>
    public static string Name(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => "float32",
        torch.ScalarType.BFloat16 => "bfloat16",
        torch.ScalarType.Float16 => "float16",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
