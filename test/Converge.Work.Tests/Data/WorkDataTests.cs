namespace Converge.Work.Tests.Data;

public class WorkDataTests
{
    // {"k":"<n chars>"} is n + 8 bytes serialized.
    private static WorkData OfSize(int bytes) => WorkData.From(("k", new string('x', bytes - 8)));

    [Fact]
    public void Data_of_exactly_10240_bytes_is_accepted()
    {
        var data = OfSize(10_240);
        Assert.Equal(10_240, data.SerializedSize);
    }

    [Fact]
    public void Data_of_10241_bytes_is_rejected_with_the_sizes_in_the_message()
    {
        var e = Assert.Throws<ArgumentException>(() => OfSize(10_241));
        Assert.Contains("10241", e.Message, StringComparison.Ordinal);
        Assert.Contains("10240", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Values_round_trip_through_json_with_their_types()
    {
        var data = WorkData.CreateBuilder()
            .Put("s", "text")
            .Put("i", 42L)
            .Put("d", 1.0)
            .Put("b", true)
            .Put("sa", new[] { "a", "b" })
            .Put("ia", new[] { 1, 2 })
            .Put("da", new[] { 0.5, 2.0 })
            .Put("ba", new[] { true, false })
            .Build();

        var back = WorkData.FromJson(data.ToJson());

        Assert.Equal(data, back);
        Assert.Equal("text", back.GetString("s"));
        Assert.Equal(42L, back.GetInt64("i"));
        Assert.IsType<double>(back["d"]);
        Assert.Equal(1.0, back.GetDouble("d"));
        Assert.True(back.GetBoolean("b"));
        Assert.Equal(["a", "b"], back.GetStringArray("sa"));
        Assert.Equal([1L, 2L], back.GetInt64Array("ia"));
        Assert.Equal([0.5, 2.0], back.GetDoubleArray("da"));
        Assert.Equal([true, false], back.GetBooleanArray("ba"));
    }

    [Fact]
    public void Empty_arrays_read_back_as_empty_arrays_of_any_type()
    {
        var back = WorkData.FromJson(WorkData.From(("n", Array.Empty<long>())).ToJson());
        Assert.Empty(back.GetInt64Array("n")!);
        Assert.Empty(back.GetDoubleArray("n")!);
        Assert.Empty(back.GetBooleanArray("n")!);
        Assert.Empty(back.GetStringArray("n")!);
    }

    [Theory]
    [InlineData("[1,2]")]
    [InlineData("{\"k\":{\"nested\":1}}")]
    [InlineData("{\"k\":[1,\"a\"]}")]
    [InlineData("{\"k\":null}")]
    [InlineData("{not json")]
    public void Malformed_json_is_rejected(string json) => Assert.Throws<FormatException>(() => WorkData.FromJson(json));

    [Fact]
    public void Unsupported_types_and_non_finite_numbers_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => WorkData.CreateBuilder().Put("k", (object)new DateTime(2030, 1, 1)));
        Assert.Throws<ArgumentException>(() => WorkData.CreateBuilder().Put("k", double.NaN));
        Assert.Throws<ArgumentException>(() => WorkData.CreateBuilder().Put("", "v"));
    }

    [Fact]
    public void Overwriting_merger_lets_later_inputs_win()
    {
        var merged = InputMerger.Overwriting.Merge([WorkData.From(("a", 1), ("b", "own")), WorkData.From(("b", "pre"))]);
        Assert.Equal(1L, merged.GetInt64("a"));
        Assert.Equal("pre", merged.GetString("b"));
    }

    [Fact]
    public void Array_creating_merger_collects_values_and_rejects_mixed_types()
    {
        var merged = InputMerger.ArrayCreating.Merge([WorkData.From(("n", 1)), WorkData.From(("n", 2), ("s", "x")), WorkData.From(("n", new[] { 3, 4 }))]);
        Assert.Equal([1L, 2L, 3L, 4L], merged.GetInt64Array("n"));
        Assert.Equal(["x"], merged.GetStringArray("s"));

        Assert.Throws<InvalidOperationException>(() => InputMerger.ArrayCreating.Merge([WorkData.From(("n", 1)), WorkData.From(("n", "one"))]));
    }
}
