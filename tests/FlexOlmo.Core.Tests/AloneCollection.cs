namespace FlexOlmo.Core.Tests;

/// <summary>Tests that must run with no other test beside them: they count what the whole process did.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone";
}
