namespace FlexOlmo.Data;

/// <summary>The one rule for how wide the ids of a headerless token shard are: uint32 when the vocabulary needs it, else uint16.</summary>
public static class TokenWidth
{
    public static int ForVocabulary(int vocabSize) => vocabSize > ushort.MaxValue + 1 ? 4 : 2;
}
