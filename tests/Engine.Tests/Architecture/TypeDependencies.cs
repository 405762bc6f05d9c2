using System.Reflection;
using System.Reflection.Emit;

namespace Engine.Tests.Architecture;

/// <summary>
/// The types a compiled type uses: its signatures (base type, interfaces, fields, properties, methods, attributes,
/// generic arguments) and every type, method and field its method bodies name (read from the IL), nested and
/// compiler-generated types (lambdas, iterators, async state machines) included.
/// </summary>
public static class TypeDependencies
{
    static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    public static IEnumerable<Type> Of(Type type)
    {
        var found = new HashSet<Type>();
        void Add(Type? t)
        {
            if (t is null) return;
            while (t.HasElementType) t = t.GetElementType()!;
            if (t.IsGenericParameter) return;
            if (!found.Add(t)) return;
            if (t.IsGenericType) foreach (var a in t.GetGenericArguments()) Add(a);
        }
        Add(type.BaseType);
        foreach (var i in type.GetInterfaces()) Add(i);
        foreach (var a in type.GetCustomAttributesData()) Add(a.AttributeType);
        foreach (var f in type.GetFields(Everything)) Add(f.FieldType);
        foreach (var p in type.GetProperties(Everything)) Add(p.PropertyType);
        foreach (var m in type.GetMethods(Everything).Cast<MethodBase>().Concat(type.GetConstructors(Everything)))
        {
            if (m is MethodInfo mi) Add(mi.ReturnType);
            foreach (var p in m.GetParameters()) Add(p.ParameterType);
            foreach (var a in m.GetCustomAttributesData()) Add(a.AttributeType);
            var body = m.GetMethodBody();
            if (body is null) continue;
            foreach (var l in body.LocalVariables) Add(l.LocalType);
            foreach (var t in BodyReferences(m, body.GetILAsByteArray()!)) Add(t);
        }
        return found;
    }

    static IEnumerable<Type> BodyReferences(MethodBase method, byte[] il)
    {
        var module = method.Module;
        var typeArgs = method.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            var op = OpCodesByValue[value];
            switch (op.OperandType)
            {
                case OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok:
                    int token = BitConverter.ToInt32(il, i);
                    var member = module.ResolveMember(token, typeArgs, methodArgs);
                    switch (member)
                    {
                        case Type t: yield return t; break;
                        case FieldInfo f: yield return f.DeclaringType!; yield return f.FieldType; break;
                        case MethodBase mb:
                            yield return mb.DeclaringType!;
                            if (mb is MethodInfo { IsGenericMethod: true } g) foreach (var a in g.GetGenericArguments()) yield return a;
                            break;
                    }
                    i += 4;
                    break;
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: i += 1; break;
                case OperandType.InlineVar: i += 2; break;
                case OperandType.InlineI8 or OperandType.InlineR: i += 8; break;
                case OperandType.InlineSwitch: i += 4 + 4 * BitConverter.ToInt32(il, i); break;
                default: i += 4; break; // InlineI, InlineBrTarget, InlineSig, InlineString, ShortInlineR
            }
        }
    }
}
