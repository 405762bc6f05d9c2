namespace Engine.Data;

/// <summary>
/// How to read a dataset file beyond what its columns say. Labels from ratings: rows with a numeric rating
/// column (<see cref="RatingColumn"/>, or "rating"/"score" when not named) and no boolean <c>label</c> become
/// unpaired rows labelled desirable when rating ≥ <see cref="LabelThreshold"/>.
/// </summary>
public sealed record DatasetReadOptions
{
    public static readonly DatasetReadOptions Default = new();

    /// <summary>Turns a numeric rating into KTO's label: desirable when rating ≥ threshold.</summary>
    public double? LabelThreshold { get; init; }

    /// <summary>The rating column; null looks for "rating", then "score".</summary>
    public string? RatingColumn { get; init; }

    /// <summary>
    /// Accept {prompt, completion} rows without a label as desirable (TRL's prompt-completion SFT format);
    /// preference training leaves this off so a forgotten label column is an error.
    /// </summary>
    public bool UnlabeledCompletionsAreDesirable { get; init; }

    public static readonly IReadOnlyList<string> DefaultRatingColumns = new[] { "rating", "score" };
}
