using System.Globalization;

namespace Engine.Data;

/// <summary>
/// KTO's class-imbalance rule (Ethayarajh et al.; ../docs alignment.md): choose the weights so that
/// λ_D·n_D / (λ_U·n_U) lies in [1, 4/3]; outside it, say so and suggest weights.
/// </summary>
public sealed record KtoClassBalance(int Desirable, int Undesirable, double DesirableWeight = 1.0, double UndesirableWeight = 1.0)
{
    public const double Low = 1.0, High = 4.0 / 3.0;

    public static KtoClassBalance Of(IEnumerable<bool> labels, double desirableWeight = 1.0, double undesirableWeight = 1.0)
    {
        int d = 0, u = 0;
        foreach (bool l in labels) if (l) d++; else u++;
        return new KtoClassBalance(d, u, desirableWeight, undesirableWeight);
    }

    /// <summary>λ_D·n_D / (λ_U·n_U); infinite when there are no undesirable rows.</summary>
    public double Ratio => Undesirable == 0 ? double.PositiveInfinity : DesirableWeight * Desirable / (UndesirableWeight * Undesirable);

    public bool InRange => Desirable > 0 && Undesirable > 0 && Ratio >= Low - 1e-9 && Ratio <= High + 1e-9;

    /// <summary>Desirable weights that put the ratio in range with the undesirable weight unchanged.</summary>
    public (double Min, double Max)? SuggestedDesirableWeight => Desirable == 0 || Undesirable == 0 ? null
        : (Low * UndesirableWeight * Undesirable / Desirable, High * UndesirableWeight * Undesirable / Desirable);

    /// <summary>Undesirable weights that put the ratio in range with the desirable weight unchanged.</summary>
    public (double Min, double Max)? SuggestedUndesirableWeight => Desirable == 0 || Undesirable == 0 ? null
        : (DesirableWeight * Desirable / (High * Undesirable), DesirableWeight * Desirable / (Low * Undesirable));

    /// <summary>Null when balanced; otherwise what is wrong and what to set.</summary>
    public string? Warning
    {
        get
        {
            if (Desirable == 0 && Undesirable == 0) return "no rows";
            if (Desirable == 0) return "no desirable rows: KTO's desirable term never applies";
            if (Undesirable == 0) return "no undesirable rows: KTO's undesirable term never applies";
            if (InRange) return null;
            var (dMin, dMax) = SuggestedDesirableWeight!.Value;
            var (uMin, uMax) = SuggestedUndesirableWeight!.Value;
            // Suggest raising the minority's weight (the paper's advice), so no weight drops below 1.
            string fix = Ratio < Low
                ? $"set the desirable weight to {F(dMin)}–{F(dMax)} (undesirable weight {F(UndesirableWeight)})"
                : $"set the undesirable weight to {F(uMin)}–{F(uMax)} (desirable weight {F(DesirableWeight)})";
            return $"class imbalance: λ_D·n_D / (λ_U·n_U) = {F(DesirableWeight)}·{Desirable} / ({F(UndesirableWeight)}·{Undesirable}) = {F(Ratio)}, " +
                   $"outside [1, 4/3]; {fix}";
        }
    }

    static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
}
