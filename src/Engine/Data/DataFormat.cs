namespace Engine.Data;

/// <summary>What a dataset's rows hold: preference pairs (DPO family) or labelled single completions (KTO).</summary>
public enum DataFormat { Paired, Unpaired }

/// <summary>Whether the fields are plain text or chat message lists rendered with the model's chat template.</summary>
public enum DataStyle { Text, Conversational }
