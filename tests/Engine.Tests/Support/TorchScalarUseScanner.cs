using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Serving.Engine.Tests.Support;

/// <summary>
/// Finds, by reading IL, the calls into TorchSharp that make a Scalar nobody keeps alive: an implicit conversion or
/// <c>ToScalar</c> outside the one type allowed to make them, or a call to a TorchSharp member whose body (or a TorchSharp
/// member it calls, transitively) converts a value to a Scalar itself — such as <c>Tensor + Tensor</c>, which passes a
/// fresh <c>alpha = 1</c>. See <c>Serving.Engine.Runtime.TorchScalars</c> for why these are bugs.
/// </summary>
internal static class TorchScalarUseScanner
{
    private const string TorchSharpAssembly = "TorchSharp";
    private static readonly IReadOnlyDictionary<short, OperandType> Operands = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value, o => o.OperandType);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlySet<string>> Making = new();

    /// <summary>
    /// The rule's breaches in <paramref name="assemblyFile"/> (next to TorchSharp.dll in <paramref name="bin"/>), one line
    /// each: a Scalar conversion outside <c>TorchScalars</c>, or a call to a member of <see cref="ScalarMakingMembers"/>,
    /// except from the types named in <paramref name="allowedCallers"/>.
    /// </summary>
    public static List<string> Offences(string bin, string assemblyFile, params string[] allowedCallers)
    {
        var making = ScalarMakingMembers(Path.Combine(bin, "TorchSharp.dll"));
        return TorchSharpCalls(Path.Combine(bin, assemblyFile))
            .Where(c => !c.Method.Contains(":Serving.Engine.Runtime.TorchScalars::", StringComparison.Ordinal))
            .Where(c => !allowedCallers.Any(a => c.Method.Contains(":" + a, StringComparison.Ordinal)))
            .Where(c => IsScalarConversion(c.Callee) || making.Contains(c.Callee))
            .Select(c => $"{c.Method} → {c.Callee}")
            .Distinct()
            .ToList();
    }

    /// <summary>
    /// Keys (<c>Type::Name(signature)</c>) of the TorchSharp methods that make a temporary Scalar, directly or through
    /// others; computed once per file.
    /// </summary>
    public static IReadOnlySet<string> ScalarMakingMembers(string torchSharpPath) => Making.GetOrAdd(torchSharpPath, ComputeScalarMakingMembers);

    private static IReadOnlySet<string> ComputeScalarMakingMembers(string torchSharpPath)
    {
        var calls = new Dictionary<string, List<string>>();
        foreach (var (method, callee) in Calls(torchSharpPath))
        {
            if (!calls.TryGetValue(method, out var list))
                calls[method] = list = [];
            list.Add(callee);
        }

        var making = new HashSet<string>(calls.Where(c => c.Value.Any(IsScalarConversion)).Select(c => c.Key));
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (method, callees) in calls)
                if (!making.Contains(method) && callees.Any(making.Contains))
                    grew = making.Add(method);
        }

        return making;
    }

    /// <summary>Every call in <paramref name="assemblyPath"/> to a TorchSharp member: (calling method, callee key).</summary>
    public static IEnumerable<(string Method, string Callee)> TorchSharpCalls(string assemblyPath) =>
        Calls(assemblyPath).Where(c => c.Callee.StartsWith(TorchSharpAssembly + ":", StringComparison.Ordinal));

    /// <summary>A Scalar conversion: <c>Scalar.op_Implicit</c> or one of the <c>ToScalar</c> extension methods.</summary>
    public static bool IsScalarConversion(string callee) =>
        callee.Contains("TorchSharp.Scalar::op_Implicit(", StringComparison.Ordinal)
        || callee.Contains("TorchSharp.ScalarExtensionMethods::ToScalar(", StringComparison.Ordinal);

    /// <summary>(caller key, callee key) for every call, callvirt, newobj, ldftn and ldvirtftn; keys are <c>assembly:Type::Name(signature)</c>.</summary>
    private static IEnumerable<(string Method, string Callee)> Calls(string assemblyPath)
    {
        using var pe = new PEReader(File.OpenRead(assemblyPath));
        var md = pe.GetMetadataReader();
        string self = md.GetString(md.GetAssemblyDefinition().Name);
        var names = new TypeNames(md, self);
        var result = new List<(string, string)>();
        foreach (var typeHandle in md.TypeDefinitions)
            foreach (var methodHandle in md.GetTypeDefinition(typeHandle).GetMethods())
            {
                var method = md.GetMethodDefinition(methodHandle);
                if (method.RelativeVirtualAddress == 0)
                    continue;
                string caller = names.Method(methodHandle);
                var il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader();
                foreach (int token in CallTokens(il))
                    if (names.Callee(MetadataTokens.EntityHandle(token)) is { } callee)
                        result.Add((caller, callee));
            }

        return result;
    }

    private static IEnumerable<int> CallTokens(BlobReader il)
    {
        var tokens = new List<int>();
        while (il.RemainingBytes > 0)
        {
            short value = il.ReadByte();
            if (value == 0xFE)
                value = unchecked((short)(0xFE00 | il.ReadByte()));
            var operand = Operands[value];
            switch (operand)
            {
                case OperandType.InlineMethod:
                    int token = il.ReadInt32();
                    if (value is 0x28 or 0x6F or 0x73 || value == unchecked((short)0xFE06) || value == unchecked((short)0xFE07))
                        tokens.Add(token);           // call, callvirt, newobj, ldftn, ldvirtftn
                    break;
                case OperandType.InlineSwitch:
                    int cases = il.ReadInt32();
                    il.Offset += cases * 4;
                    break;
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    il.Offset += 1;
                    break;
                case OperandType.InlineVar:
                    il.Offset += 2;
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    il.Offset += 8;
                    break;
                default:
                    il.Offset += 4;
                    break;
            }
        }

        return tokens;
    }

    /// <summary>Names types and methods the same way whether they are defined in the assembly read or referenced from it.</summary>
    private sealed class TypeNames(MetadataReader md, string self) : ISignatureTypeProvider<string, object?>
    {
        public string Method(MethodDefinitionHandle handle)
        {
            var m = md.GetMethodDefinition(handle);
            return $"{self}:{Definition(m.GetDeclaringType())}::{md.GetString(m.Name)}({Parameters(m.DecodeSignature(this, null))})";
        }

        public string? Callee(EntityHandle handle)
        {
            switch (handle.Kind)
            {
                case HandleKind.MethodDefinition:
                    return Method((MethodDefinitionHandle)handle);
                case HandleKind.MethodSpecification:
                    return Callee(md.GetMethodSpecification((MethodSpecificationHandle)handle).Method);
                case HandleKind.MemberReference:
                    var r = md.GetMemberReference((MemberReferenceHandle)handle);
                    if (r.GetKind() != MemberReferenceKind.Method)
                        return null;
                    var (assembly, type) = Parent(r.Parent);
                    return assembly is null ? null : $"{assembly}:{type}::{md.GetString(r.Name)}({Parameters(r.DecodeMethodSignature(this, null))})";
                default:
                    return null;
            }
        }

        private (string? Assembly, string Type) Parent(EntityHandle parent) => parent.Kind switch
        {
            HandleKind.TypeReference => (Scope((TypeReferenceHandle)parent), Reference((TypeReferenceHandle)parent)),
            HandleKind.TypeDefinition => (self, Definition((TypeDefinitionHandle)parent)),
            HandleKind.TypeSpecification => GenericParent(md.GetTypeSpecification((TypeSpecificationHandle)parent)),
            _ => (null, ""),
        };

        private (string? Assembly, string Type) GenericParent(TypeSpecification spec)
        {
            var reader = md.GetBlobReader(spec.Signature);
            if (reader.ReadSignatureTypeCode() is SignatureTypeCode.GenericTypeInstance)
            {
                reader.ReadCompressedInteger();       // class or valuetype
                return Parent(reader.ReadTypeHandle());
            }

            return (null, "");
        }

        private string? Scope(TypeReferenceHandle handle)
        {
            var scope = md.GetTypeReference(handle).ResolutionScope;
            return scope.Kind switch
            {
                HandleKind.AssemblyReference => md.GetString(md.GetAssemblyReference((AssemblyReferenceHandle)scope).Name),
                HandleKind.TypeReference => Scope((TypeReferenceHandle)scope),
                HandleKind.ModuleDefinition => self,
                _ => null,
            };
        }

        private string Reference(TypeReferenceHandle handle)
        {
            var t = md.GetTypeReference(handle);
            string name = md.GetString(t.Name);
            return t.ResolutionScope.Kind == HandleKind.TypeReference
                ? $"{Reference((TypeReferenceHandle)t.ResolutionScope)}/{name}"
                : Qualified(md.GetString(t.Namespace), name);
        }

        private string Definition(TypeDefinitionHandle handle)
        {
            var t = md.GetTypeDefinition(handle);
            string name = md.GetString(t.Name);
            var outer = t.GetDeclaringType();
            return outer.IsNil ? Qualified(md.GetString(t.Namespace), name) : $"{Definition(outer)}/{name}";
        }

        private static string Qualified(string ns, string name) => ns.Length == 0 ? name : $"{ns}.{name}";

        private static string Parameters(MethodSignature<string> s) => string.Join(",", s.ParameterTypes);

        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => Definition(handle);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => Reference(handle);
        public string GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, context);
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => $"{elementType}[{new string(',', shape.Rank - 1)}]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) => $"{genericType}<{string.Join(",", typeArguments)}>";
        public string GetGenericMethodParameter(object? context, int index) => "!!" + index;
        public string GetGenericTypeParameter(object? context, int index) => "!" + index;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
    }
}
