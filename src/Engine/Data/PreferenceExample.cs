namespace Engine.Data;

/// <summary>A paired preference row: for <see cref="Prompt"/>, <see cref="Chosen"/> is preferred over <see cref="Rejected"/>.</summary>
public sealed record PreferenceExample(ExampleText Prompt, ExampleText Chosen, ExampleText Rejected, RowSource Source);
