using System.Collections;
using Parquet;
using Parquet.Serialization;

namespace Engine.Data;

/// <summary>
/// Rows of a Parquet file (the Hugging Face hub's format), one row group at a time so a large file is never
/// held whole as objects. Message columns are lists of structs {content, role}, as in ultrafeedback_binarized.
/// </summary>
internal static class ParquetRows
{
    public static IEnumerable<IRawRow> Read(string path)
    {
        int groups;
        IReadOnlyList<string> columns;
        using (var stream = File.OpenRead(path))
        {
            ParquetReader reader;
            // Parquet.Net reports a file that is not Parquet as an IOException; the file itself was readable.
            try { reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult(); }
            catch (Exception e) when (e is not EngineException)
            {
                throw new EngineException($"{path}: not a readable Parquet file ({e.Message})", e);
            }
            try
            {
                groups = reader.RowGroupCount;
                columns = reader.Schema.Fields.Select(f => f.Name).ToList();
            }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }

        long row = 0;
        for (int g = 0; g < groups; g++)
        {
            IList<Dictionary<string, object>> data;
            try
            {
                using var stream = File.OpenRead(path);
                data = ParquetSerializer.DeserializeUntypedAsync(stream, rowGroupIndex: g).GetAwaiter().GetResult().Data;
            }
            catch (Exception e) when (e is not EngineException and not UnauthorizedAccessException)
            {
                throw new EngineException($"{path}: row group {g + 1} could not be read ({e.Message})", e);
            }
            foreach (var values in data)
                yield return new ParquetRow(values, columns, new RowSource(path, null, ++row));
        }
    }

    sealed class ParquetRow(Dictionary<string, object> values, IReadOnlyList<string> columns, RowSource source) : IRawRow
    {
        public RowSource Source => source;
        public IReadOnlyCollection<string> Columns => columns;

        public bool TryGet(string column, out DataValue value)
        {
            if (!columns.Contains(column)) { value = DataValue.NullValue; return false; }
            // The untyped reader leaves null cells out of the row's dictionary.
            value = values.TryGetValue(column, out var v) ? Convert(v) : DataValue.NullValue;
            return true;
        }

        static DataValue Convert(object? v) => v switch
        {
            null => DataValue.NullValue,
            string s => new DataValue.Text(s),
            bool b => new DataValue.Bool(b),
            byte or sbyte or short or ushort or int or uint or long or ulong or float or double or decimal or Half
                => new DataValue.Number(System.Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture)),
            IDictionary => new DataValue.Other("a struct"),
            IList list => ConvertList(list),
            _ => new DataValue.Other($"a value of Parquet type {v.GetType().Name}"),
        };

        static DataValue ConvertList(IList list)
        {
            var elements = list.Cast<object?>().ToList();
            for (int i = 0; i < elements.Count; i++)
                if (elements[i] is not IDictionary<string, object>)
                    return new DataValue.Other($"a list whose element {i + 1} is {(elements[i] is null ? "null" : elements[i] is string ? "a string" : elements[i]!.GetType().Name)}, not a message struct");
            return DataValue.FromMessageElements(elements, (e, name) =>
            {
                var d = (IDictionary<string, object>)e!;
                if (!d.TryGetValue(name, out var f)) return (false, null, "");
                return f is string s ? (true, s, "string") : (true, null, f is null ? "null" : f.GetType().Name);
            });
        }
    }
}
