using System.Runtime.CompilerServices;
using FlexOlmo.Core.Native;
using FlexOlmo.Testing;

namespace FlexOlmo.Data.Tests;

internal static class TestSetup
{
#pragma warning disable CA2255 // a test assembly is an application: load libtorch before any test touches a tensor
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void LoadNativeLibraries() => TorchNative.Initialize();
}

[CollectionDefinition(Name)]
public sealed class DataCollection : ICollectionFixture<TrainingFixture>
{
    public const string Name = "data";
}
