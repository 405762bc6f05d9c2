using System.Runtime.InteropServices;

namespace Engine.Kernels.Autograd;

/// <summary>
/// LibTorchSharp's C entry points for a custom autograd node (the ones TorchSharp's own <c>autograd.Function</c> is built
/// on), declared here so <see cref="KernelNode"/> can drive them without TorchSharp's per-call managed machinery. The
/// library is the one TorchSharp has already loaded (TorchSharp-cpu 0.107.0, pinned in Engine.csproj); a change of that
/// pin must check these signatures against its THSAutograd.h.
/// </summary>
internal static unsafe class LibTorchAutograd
{
    const string Library = "LibTorchSharp";

    /// <summary>A native node: a heap <c>shared_ptr</c> (owning, until the graph holds the node) and a <c>weak_ptr</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NodeHandle
    {
        public IntPtr Shared;
        public IntPtr Weak;
    }

    /// <summary>An array of tensor handles and its length, passed by value.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TensorArray
    {
        public IntPtr* Items;
        public long Count;

        public static TensorArray Empty => default;
    }

    /// <summary>The backward: called with one gradient handle per output (owned by the callee; null when undefined).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate TensorArray ApplyCallback(IntPtr* gradients, int count);

    /// <summary>Called once when the native node is destroyed.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void DeleteCallback();

    [DllImport(Library)] internal static extern NodeHandle THSAutograd_CSharpNode_ctor(IntPtr apply, IntPtr delete);
    [DllImport(Library)] internal static extern void THSAutograd_CSharpNode_disposeSharedPtr(NodeHandle node);
    [DllImport(Library)] internal static extern void THSAutograd_CSharpNode_disposeWeakPtr(NodeHandle node);
    [DllImport(Library)] internal static extern void THSAutograd_CSharpNode_setNextEdges(NodeHandle node, TensorArray inputs, byte isExecutable);

    /// <summary>Attaches the node to the outputs (and bumps the versions of the dirty ones); the results come back through <paramref name="allocator"/>.</summary>
    [DllImport(Library)]
    internal static extern void THSAutograd_Function_wrapOutputs(TensorArray inputs, TensorArray nonDifferentiable, TensorArray dirty, TensorArray outputs,
        NodeHandle node, IntPtr allocator);

    [DllImport(Library)] internal static extern IntPtr THSAutograd_SavedVariable_ctor(IntPtr tensor, NodeHandle node, byte isInplaceOnView);
    [DllImport(Library)] internal static extern IntPtr THSAutograd_SavedVariable_unpack(IntPtr saved, NodeHandle savedFor);
    [DllImport(Library)] internal static extern void THSAutograd_SavedVariable_dispose(IntPtr saved);
    [DllImport(Library)] internal static extern byte THSAutograd_isGradEnabled();
    [DllImport(Library)] internal static extern void THSAutograd_setGrad(byte enabled);
    [DllImport(Library)] internal static extern byte THSTensor_requires_grad(IntPtr tensor);
    [DllImport(Library)] static extern IntPtr THSTorch_get_and_reset_last_err();

    /// <summary>Throws the error the last LibTorchSharp call on this thread left, if any (its CATCH keeps the message).</summary>
    internal static void ThrowIfFailed(string call)
    {
        IntPtr message = THSTorch_get_and_reset_last_err();
        if (message != IntPtr.Zero) throw new InvalidOperationException($"{call} failed in libtorch: {Marshal.PtrToStringAnsi(message)}");
    }
}
