using FlexOlmo.Testing;

namespace FlexOlmo.Training.Tests;

[CollectionDefinition(Name)]
public sealed class TrainingCollection : ICollectionFixture<TrainingFixture>
{
    public const string Name = "training";
}
