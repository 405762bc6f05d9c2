namespace Engine.Data;

/// <summary>
/// Where a run is in its data: the epoch and the index of the next microbatch within it. Starting a batch
/// iterator here draws exactly the batches a straight run would have drawn from this point.
/// </summary>
public readonly record struct DataPosition(int Epoch, int BatchIndex)
{
    public static DataPosition Start => new(0, 0);
    public override string ToString() => $"epoch {Epoch}, batch {BatchIndex}";
}
