using Engine.Data;
using Engine.Tests.Infrastructure;
using Parquet.Schema;

namespace Engine.Tests.Data;

public class DatasetReaderTests
{
    static EngineException ReadFails(string path, DatasetReadOptions? options = null) =>
        Assert.Throws<EngineException>(() => DatasetReader.Read(path, options));

    [Fact]
    public void Jsonl_paired_text_rows_keep_their_line_numbers()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl",
            """{"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "extra": 3}""",
            "",
            """{"prompt": "2+2=", "chosen": " 4", "rejected": " 5"}""");
        var ds = DatasetReader.Read(path);
        Assert.Equal(DataFormat.Paired, ds.Format);
        Assert.Equal(DataStyle.Text, ds.Style);
        Assert.False(ds.PromptWasImplicit);
        Assert.Equal(2, ds.Count);
        var second = ds.PairedExamples[1];
        Assert.Equal("2+2=", second.Prompt.Text);
        Assert.Equal(" 4", second.Chosen.Text);
        Assert.Equal(" 5", second.Rejected.Text);
        Assert.Equal(3, second.Source.Line); // the blank line 2 is skipped but counted
        Assert.Equal($"{path}:3", second.Source.ToString());
    }

    [Fact]
    public void Malformed_json_line_names_the_file_and_line()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "bad.jsonl",
            """{"prompt": "a", "chosen": "b", "rejected": "c"}""",
            """{"prompt": "a", "chosen": "b", "rejected": "c"}""",
            """{"prompt": "a", "chosen": "b" "rejected": "c"}""");
        var e = ReadFails(path);
        Assert.StartsWith($"{path}:3: malformed JSON", e.Message);
    }

    [Fact]
    public void A_line_that_is_not_an_object_is_an_error()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "arr.jsonl", """{"prompt": "a", "chosen": "b", "rejected": "c"}""", "[1, 2]");
        Assert.Contains($"{path}:2: each line must be a JSON object", ReadFails(path).Message);
    }

    [Fact]
    public void Json_array_file_is_read_with_element_lines()
    {
        using var dir = new TempDir();
        string path = dir.File("rows.json");
        File.WriteAllText(path, """
            [
              {"prompt": "p1", "completion": "c1", "label": true},
              {
                "prompt": "p2",
                "completion": "c2",
                "label": false
              }
            ]
            """);
        var ds = DatasetReader.Read(path);
        Assert.Equal(DataFormat.Unpaired, ds.Format);
        Assert.Equal(new[] { true, false }, ds.UnpairedExamples.Select(r => r.Label));
        Assert.Equal("c2", ds.UnpairedExamples[1].Completion.Text);
        Assert.Equal(2, ds.UnpairedExamples[0].Source.Line);
        Assert.Equal(3, ds.UnpairedExamples[1].Source.Line);
        Assert.Equal(2, ds.UnpairedExamples[1].Source.Row);
    }

    [Fact]
    public void Malformed_json_array_names_the_line()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.json");
        File.WriteAllText(path, "[\n  {\"prompt\": \"p\", \"completion\": \"c\", \"label\": true},\n  {\"prompt\": \"p\",\n   \"completion\": oops}\n]\n");
        var e = ReadFails(path);
        Assert.StartsWith($"{path}:4: malformed JSON", e.Message);
    }

    [Fact]
    public void Json_file_with_one_object_per_line_reads_as_json_lines()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "hf.json",
            """{"prompt": "p", "completion": "c", "label": true}""",
            """{"prompt": "q", "completion": "d", "label": false}""");
        Assert.Equal(2, DatasetReader.Read(path).Count);
    }

    [Fact]
    public void Implicit_prompt_text_pairs_are_split_like_trl()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "implicit.jsonl", """{"chosen": "The sky is blue.", "rejected": "The sky is green."}""");
        var ds = DatasetReader.Read(path);
        Assert.True(ds.PromptWasImplicit);
        var row = ds.PairedExamples[0];
        // Common prefix "The sky is "; the space before the first difference goes to the completions (TRL's extract_prompt).
        Assert.Equal("The sky is", row.Prompt.Text);
        Assert.Equal(" blue.", row.Chosen.Text);
        Assert.Equal(" green.", row.Rejected.Text);
    }

    [Fact]
    public void Implicit_prompt_where_one_completion_extends_the_other_keeps_a_character_like_trl()
    {
        // TRL's loop ends at the last compared index when no character differs: prompt "ab", chosen "c", rejected "cd".
        var (p, c, r) = PromptExtraction.Split("abc", "abcd");
        Assert.Equal(("ab", "c", "cd"), (p, c, r));
    }

    [Fact]
    public void Implicit_prompt_conversations_share_their_leading_messages()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "conv.jsonl",
            """{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]}""");
        var ds = DatasetReader.Read(path);
        Assert.Equal(DataStyle.Conversational, ds.Style);
        var row = ds.PairedExamples[0];
        Assert.Equal(new[] { new ChatTurn("user", "Hi") }, row.Prompt.Messages);
        Assert.Equal(new[] { new ChatTurn("assistant", "Hello!") }, row.Chosen.Messages);
        Assert.Equal(new[] { new ChatTurn("assistant", "Go away.") }, row.Rejected.Messages);
    }

    [Fact]
    public void Sharegpt_from_value_messages_are_accepted()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "sg.jsonl",
            """{"prompt": [{"from": "user", "value": "Hi"}], "completion": [{"from": "assistant", "value": "Yo"}], "label": true}""");
        Assert.Equal(new ChatTurn("assistant", "Yo"), DatasetReader.Read(path).UnpairedExamples[0].Completion.Messages![0]);
    }

    [Fact]
    public void Label_that_is_not_boolean_is_an_error_naming_the_row()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "u.jsonl",
            """{"prompt": "p", "completion": "c", "label": true}""",
            """{"prompt": "p", "completion": "c", "label": 1}""");
        Assert.Equal($"{path}:2: 'label' must be true or false (got number 1)", ReadFails(path).Message);
        var path2 = DataFiles.Lines(dir, "u2.jsonl", """{"prompt": "p", "completion": "c", "label": "true"}""");
        Assert.Equal($"{path2}:1: 'label' must be true or false (got string \"true\")", ReadFails(path2).Message);
    }

    [Fact]
    public void Missing_chosen_in_a_later_row_is_an_error_with_its_line()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl",
            """{"prompt": "a", "chosen": "b", "rejected": "c"}""",
            """{"prompt": "a", "rejected": "c"}""");
        var e = ReadFails(path);
        Assert.StartsWith($"{path}:2: missing 'chosen'", e.Message);
    }

    [Fact]
    public void Chosen_without_rejected_column_is_an_error()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl", """{"prompt": "a", "chosen": "b"}""");
        Assert.Contains("has 'chosen' but no 'rejected' column", ReadFails(path).Message);
    }

    [Fact]
    public void Unknown_format_names_the_columns_found()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "x.jsonl", """{"question": "a", "answer": "b"}""");
        var e = ReadFails(path);
        Assert.Contains("unknown dataset format", e.Message);
        Assert.Contains("columns found: question, answer", e.Message);
    }

    [Fact]
    public void Sft_messages_data_is_refused_as_not_preference_data()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "sft.jsonl", """{"messages": [{"role": "user", "content": "a"}]}""");
        Assert.Contains("supervised fine-tuning data", ReadFails(path).Message);
    }

    [Fact]
    public void Wrong_field_types_are_errors()
    {
        using var dir = new TempDir();
        var num = DataFiles.Lines(dir, "n.jsonl", """{"prompt": "a", "chosen": 5, "rejected": "c"}""");
        Assert.Equal($"{num}:1: 'chosen' must be a string or a list of {{role, content}} messages (got number 5)", ReadFails(num).Message);
        var nul = DataFiles.Lines(dir, "z.jsonl", """{"prompt": null, "chosen": "b", "rejected": "c"}""");
        Assert.Equal($"{nul}:1: 'prompt' is null", ReadFails(nul).Message);
        var badMsg = DataFiles.Lines(dir, "m.jsonl", """{"prompt": [{"role": "user"}], "completion": [{"role": "assistant", "content": "x"}], "label": true}""");
        Assert.Contains("element 1 is not a message with 'role' and 'content' (no 'content')", ReadFails(badMsg).Message);
        var mixed = DataFiles.Lines(dir, "mx.jsonl", """{"prompt": "p", "completion": [{"role": "assistant", "content": "x"}], "label": true}""");
        Assert.Contains("'prompt' is plain text but 'completion' is a list of messages", ReadFails(mixed).Message);
    }

    [Fact]
    public void Rows_of_another_style_than_the_first_are_an_error()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "mix.jsonl",
            """{"prompt": "p", "completion": "c", "label": true}""",
            """{"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "assistant", "content": "c"}], "label": true}""");
        var e = ReadFails(path);
        Assert.StartsWith($"{path}:2: this row is a list of messages but earlier rows", e.Message);
    }

    [Fact]
    public void Empty_completions_are_skipped_and_counted()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "e.jsonl",
            """{"prompt": "p", "completion": "c", "label": true}""",
            """{"prompt": "p", "completion": "   ", "label": false}""",
            """{"prompt": "p", "completion": "", "label": true}""",
            """{"prompt": "p", "completion": "d", "label": false}""");
        var ds = DatasetReader.Read(path);
        Assert.Equal(2, ds.Count);
        Assert.Equal(new[] { 2, 3 }, ds.SkippedRows.Select(s => s.Source.Line!.Value));
        Assert.All(ds.SkippedRows, s => Assert.Equal("empty completion", s.Reason));
        Assert.Contains(ds.Notices, n => n.Contains("2 rows skipped: empty completion") && n.Contains($"{path}:2"));
    }

    [Fact]
    public void A_file_with_only_empty_completions_has_no_usable_rows()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "e.jsonl", """{"prompt": "p", "chosen": "", "rejected": "x"}""");
        Assert.Contains("no usable rows", ReadFails(path).Message);
    }

    [Fact]
    public void Ratings_become_labels_with_a_threshold()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "r.jsonl",
            """{"prompt": "p", "completion": "a", "rating": 4.5}""",
            """{"prompt": "p", "completion": "b", "rating": 2}""",
            """{"prompt": "p", "completion": "c", "rating": 4}""");
        var noThreshold = ReadFails(path);
        Assert.Contains("need a boolean 'label'", noThreshold.Message);
        Assert.Contains("--label-threshold", noThreshold.Message);
        var ds = DatasetReader.Read(path, new DatasetReadOptions { LabelThreshold = 4 });
        Assert.Equal(new[] { true, false, true }, ds.UnpairedExamples.Select(r => r.Label));
        Assert.Contains(ds.Notices, n => n.Contains("labels from 'rating' ≥ 4: 2 desirable, 1 undesirable"));

        var named = DataFiles.Lines(dir, "s.jsonl", """{"prompt": "p", "completion": "a", "stars": 1}""", """{"prompt": "p", "completion": "a", "stars": "x"}""");
        var e = ReadFails(named, new DatasetReadOptions { LabelThreshold = 3, RatingColumn = "stars" });
        Assert.Equal($"{named}:2: 'stars' must be a number to be compared with the label threshold (got string \"x\")", e.Message);
    }

    [Fact]
    public void A_threshold_with_a_boolean_label_column_is_an_error()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "u.jsonl", """{"prompt": "p", "completion": "c", "label": true, "score": 3}""");
        Assert.Contains("already have a boolean 'label'", ReadFails(path, new DatasetReadOptions { LabelThreshold = 2 }).Message);
    }

    [Fact]
    public void Unsupported_or_missing_files_are_errors()
    {
        using var dir = new TempDir();
        Assert.Contains("unsupported dataset file type '.csv'", ReadFails(DataFiles.Lines(dir, "d.csv", "a,b")).Message);
        Assert.Contains("dataset file not found", ReadFails(dir.File("none.jsonl")).Message);
        Assert.Contains("the file has no rows", ReadFails(DataFiles.Lines(dir, "empty.jsonl", "")).Message);
    }

    [Fact]
    public void Parquet_unpaired_text_rows_are_read()
    {
        using var dir = new TempDir();
        var schema = new ParquetSchema(new DataField<string>("prompt"), new DataField<string>("completion"), new DataField<bool>("label"));
        var path = DataFiles.Parquet(dir, "kto.parquet", schema, new List<IDictionary<string, object?>>
        {
            new Dictionary<string, object?> { ["prompt"] = "p1", ["completion"] = "good", ["label"] = true },
            new Dictionary<string, object?> { ["prompt"] = "p2", ["completion"] = "bad", ["label"] = false },
        });
        var ds = DatasetReader.Read(path);
        Assert.Equal(DataFormat.Unpaired, ds.Format);
        Assert.Equal(new[] { "good", "bad" }, ds.UnpairedExamples.Select(r => r.Completion.Text));
        Assert.Equal(new[] { true, false }, ds.UnpairedExamples.Select(r => r.Label));
        Assert.Equal($"{path}: row 2", ds.UnpairedExamples[1].Source.ToString());
    }

    [Fact]
    public void Parquet_with_message_struct_lists_like_ultrafeedback_is_read()
    {
        // ultrafeedback_binarized: prompt (string), chosen/rejected (list of {content, role}) that repeat the prompt,
        // plus columns we ignore. TRL ignores the text prompt and extracts it from the conversations.
        using var dir = new TempDir();
        var schema = new ParquetSchema(
            new DataField<string>("prompt"), new DataField<string>("prompt_id"),
            DataFiles.MessageColumn("chosen"), DataFiles.MessageColumn("rejected"),
            new DataField<double>("score_chosen"), new DataField<double>("score_rejected"));
        var path = DataFiles.Parquet(dir, "uf.parquet", schema, new List<IDictionary<string, object?>>
        {
            new Dictionary<string, object?>
            {
                ["prompt"] = "Name a colour.", ["prompt_id"] = "x1",
                ["chosen"] = DataFiles.Messages(("user", "Name a colour."), ("assistant", "Blue.")),
                ["rejected"] = DataFiles.Messages(("user", "Name a colour."), ("assistant", "Seven.")),
                ["score_chosen"] = 8.0, ["score_rejected"] = 2.0,
            },
        });
        var ds = DatasetReader.Read(path);
        Assert.Equal(DataStyle.Conversational, ds.Style);
        Assert.True(ds.PromptWasImplicit);
        var row = ds.PairedExamples[0];
        Assert.Equal(new[] { new ChatTurn("user", "Name a colour.") }, row.Prompt.Messages);
        Assert.Equal(new[] { new ChatTurn("assistant", "Blue.") }, row.Chosen.Messages);
        Assert.Equal(new[] { new ChatTurn("assistant", "Seven.") }, row.Rejected.Messages);
        Assert.Contains(ds.Notices, n => n.Contains("'prompt' column was not used"));
    }

    [Fact]
    public void Parquet_label_of_the_wrong_type_names_the_row()
    {
        using var dir = new TempDir();
        var schema = new ParquetSchema(new DataField<string>("prompt"), new DataField<string>("completion"), new DataField<int>("label"));
        var path = DataFiles.Parquet(dir, "bad.parquet", schema, new List<IDictionary<string, object?>>
        {
            new Dictionary<string, object?> { ["prompt"] = "p", ["completion"] = "c", ["label"] = 1 },
        });
        Assert.Equal($"{path}: row 1: 'label' must be true or false (got number 1)", ReadFails(path).Message);
    }

    [Fact]
    public void A_file_that_is_not_parquet_is_an_error()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "fake.parquet", "not parquet at all");
        Assert.Contains("not a readable Parquet file", ReadFails(path).Message);
    }
}
