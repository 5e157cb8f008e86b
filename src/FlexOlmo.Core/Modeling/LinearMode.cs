namespace FlexOlmo.Core.Modeling;

/// <summary>How a forward pass multiplies its rows by a weight matrix.</summary>
public enum LinearMode
{
    /// <summary>All rows at once, as libtorch (or the decode kernel) blocks them: fastest, but a row's last bits may depend on the others.</summary>
    Batched,

    /// <summary>
    /// Every row exactly as a one-row call computes it (CPU, without autograd), so a sequence's numbers never depend on
    /// what shares its batch. The server decodes this way; elsewhere it is the same as <see cref="Batched"/>.
    /// </summary>
    RowInvariant,
}
