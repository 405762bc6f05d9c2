using Engine.Objectives;

namespace Engine.Tests.Objectives;

public class AlignmentMethodsTests
{
    [Theory]
    [InlineData("dpo", AlignmentMethod.Dpo, true, DataShape.Paired, 5e-7)]
    [InlineData("KTO", AlignmentMethod.Kto, true, DataShape.Unpaired, 5e-6)]
    [InlineData("sft", AlignmentMethod.Sft, false, DataShape.Completions, 2e-5)]
    [InlineData(" orpo ", AlignmentMethod.Orpo, false, DataShape.Paired, 1e-6)]
    [InlineData("simpo", AlignmentMethod.Simpo, false, DataShape.Paired, 1e-6)]
    public void Methods_parse_with_their_table_row(string name, AlignmentMethod method, bool needsRef, DataShape shape, double lr)
    {
        Assert.Equal(method, AlignmentMethods.Parse(name));
        var info = AlignmentMethods.Info(method);
        Assert.Equal(needsRef, info.NeedsReferenceModel);
        Assert.Equal(shape, info.DataShape);
        Assert.Equal(lr, info.DefaultLearningRate);
    }

    [Fact]
    public void Defaults_follow_the_spec()
    {
        Assert.Equal(0.1, AlignmentMethods.Info(AlignmentMethod.Dpo).DefaultBeta);
        Assert.Equal(0.1, AlignmentMethods.Info(AlignmentMethod.Kto).DefaultBeta);
        Assert.Null(AlignmentMethods.Info(AlignmentMethod.Sft).DefaultBeta);
        Assert.False(AlignmentMethods.NeedsReferenceModel(AlignmentMethod.Dpo, referenceFree: true));
        Assert.True(AlignmentMethods.NeedsReferenceModel(AlignmentMethod.Kto, referenceFree: false));
    }

    [Fact]
    public void Loss_types_parse_by_trl_name()
    {
        Assert.Equal(DpoLossType.Sigmoid, AlignmentMethods.ParseDpoLossType("sigmoid"));
        Assert.Equal(DpoLossType.Robust, AlignmentMethods.ParseDpoLossType("robust"));
        Assert.Equal(DpoLossType.Hinge, AlignmentMethods.ParseDpoLossType("hinge"));
        Assert.Equal(DpoLossType.Ipo, AlignmentMethods.ParseDpoLossType("IPO"));
        Assert.Equal(KtoLossType.Kto, AlignmentMethods.ParseKtoLossType("kto"));
        Assert.Equal(KtoLossType.ApoZeroUnpaired, AlignmentMethods.ParseKtoLossType("apo_zero_unpaired"));
        Assert.Equal("apo_zero_unpaired", AlignmentMethods.Name(KtoLossType.ApoZeroUnpaired));
    }

    [Fact]
    public void Unknown_names_fail_clearly()
    {
        var m = Assert.Throws<EngineException>(() => AlignmentMethods.Parse("ppo"));
        Assert.Contains("'ppo'", m.Message);
        Assert.Contains("dpo, kto, sft, orpo, simpo", m.Message);
        var d = Assert.Throws<EngineException>(() => AlignmentMethods.ParseDpoLossType("exo_pair"));
        Assert.Contains("sigmoid, robust, hinge, ipo", d.Message);
        var k = Assert.Throws<EngineException>(() => AlignmentMethods.ParseKtoLossType("sigmoid"));
        Assert.Contains("kto, apo_zero_unpaired", k.Message);
    }
}
