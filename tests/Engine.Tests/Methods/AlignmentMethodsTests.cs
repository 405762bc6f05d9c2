using Engine.Methods;
using Engine.Objectives;
using Engine.Util;

namespace Engine.Tests.Methods;

public class AlignmentMethodsTests
{
    [Theory]
    [InlineData("dpo", "dpo", true, DataShape.Paired, 5e-7)]
    [InlineData("KTO", "kto", true, DataShape.Unpaired, 5e-6)]
    [InlineData("sft", "sft", false, DataShape.Completions, 2e-5)]
    [InlineData(" orpo ", "orpo", false, DataShape.Paired, 1e-6)]
    [InlineData("simpo", "simpo", false, DataShape.Paired, 1e-6)]
    public void Methods_parse_with_their_properties(string name, string canonical, bool usesReference, DataShape shape, double lr)
    {
        var method = AlignmentMethods.Parse(name);
        Assert.Equal(canonical, method.Name);
        Assert.Equal(usesReference, method.UsesReference(new ObjectiveOptions()));
        Assert.Equal(shape, method.Shape);
        Assert.Equal(lr, method.DefaultLearningRate);
    }

    [Fact]
    public void Defaults_follow_the_spec()
    {
        Assert.Equal(0.1, AlignmentMethods.Dpo.DefaultBeta);
        Assert.Equal(0.1, AlignmentMethods.Kto.DefaultBeta);
        Assert.Null(AlignmentMethods.Sft.DefaultBeta);
        Assert.False(AlignmentMethods.Dpo.UsesReference(new ObjectiveOptions { ReferenceFree = true }));
        Assert.True(AlignmentMethods.Kto.UsesReference(new ObjectiveOptions()));
        Assert.Equal(2, AlignmentMethods.Kto.MinMicroBatch);
        Assert.Equal(1, AlignmentMethods.Dpo.MinMicroBatch);
    }

    [Fact]
    public void Costs_count_the_forward_passes_of_each_method()
    {
        var none = new ObjectiveOptions();
        Assert.Equal(new MethodCost(2, 0, 2), AlignmentMethods.Dpo.Cost(none));
        Assert.Equal(new MethodCost(2, 0, 0), AlignmentMethods.Dpo.Cost(none with { ReferenceFree = true }));
        // KTO: the rows, the mismatched pairs without gradient, and the reference of both.
        Assert.Equal(new MethodCost(1, 1, 2), AlignmentMethods.Kto.Cost(none));
        Assert.Equal(new MethodCost(1, 0, 1), AlignmentMethods.Kto.Cost(none with { NoZ0 = true }));
        Assert.Equal(new MethodCost(1, 0, 0), AlignmentMethods.Sft.Cost(none));
        Assert.Equal(new MethodCost(2, 0, 0), AlignmentMethods.Orpo.Cost(none));
    }

    [Fact]
    public void Loss_types_parse_by_trl_name_through_the_method()
    {
        Assert.Equal(DpoLossType.Ipo, AlignmentMethods.Dpo.Options(new ObjectiveOptions { LossType = "IPO" }).LossType);
        Assert.Equal(DpoLossType.Sigmoid, AlignmentMethods.Dpo.Options(new ObjectiveOptions()).LossType);
        Assert.Equal(KtoLossType.ApoZeroUnpaired, AlignmentMethods.Kto.Options(new ObjectiveOptions { LossType = "apo_zero_unpaired" }).LossType);
        Assert.Equal("apo_zero_unpaired", Spelling.Of(KtoLossType.ApoZeroUnpaired));
        Assert.Equal(new[] { "sigmoid", "robust", "hinge", "ipo" }, AlignmentMethods.Dpo.LossTypes);
    }

    [Fact]
    public void Unknown_names_fail_clearly()
    {
        var m = Assert.Throws<EngineException>(() => AlignmentMethods.Parse("ppo"));
        Assert.Contains("'ppo'", m.Message);
        Assert.Contains("dpo, kto, sft, orpo, simpo", m.Message);
        var d = Assert.Throws<EngineException>(() => AlignmentMethods.Dpo.Validate(new ObjectiveOptions { LossType = "exo_pair" }));
        Assert.Contains("sigmoid, robust, hinge, ipo", d.Message);
        var k = Assert.Throws<EngineException>(() => AlignmentMethods.Kto.Validate(new ObjectiveOptions { LossType = "sigmoid" }));
        Assert.Contains("kto, apo_zero_unpaired", k.Message);
    }

    [Fact]
    public void A_knob_of_another_method_is_an_error_naming_the_methods_it_applies_to()
    {
        var e = Assert.Throws<EngineException>(() => AlignmentMethods.Dpo.Validate(new ObjectiveOptions { NoZ0 = true }));
        Assert.Contains("--no-z0 does not apply to dpo", e.Message);
        Assert.Contains("kto", e.Message);
        e = Assert.Throws<EngineException>(() => AlignmentMethods.Sft.Validate(new ObjectiveOptions { Beta = 0.2 }));
        Assert.Contains("--beta does not apply to sft", e.Message);
        AlignmentMethods.Simpo.Validate(new ObjectiveOptions { Beta = 2, SimpoGamma = 0.5 });
    }
}
