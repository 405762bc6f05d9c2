using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using static Engine.Kernels.Autograd.LibTorchAutograd;
using static TorchSharp.torch;

namespace Engine.Kernels.Autograd;

/// <summary>
/// The autograd node of one call of a fused layer kernel (RMSNorm, RoPE, the gated activation): the C node TorchSharp's
/// <c>autograd.Function</c> uses, driven directly. Those kernels run several times per layer, and TorchSharp's per-call
/// machinery cost more than a kernel's own memory traffic at training sizes. Measured on the bench-25m RMSNorm bf16
/// row (2048 tokens, after a composite as in training), it added ~0.3 ms to a ~0.4 ms kernel: a node object with two
/// fresh native thunks, five pinned arrays, LINQ, and an <c>empty_like</c> of every output that it keeps until the node
/// dies (on CUDA that would hold real memory the size of each output). Here the thunks belong to pooled slots made once,
/// the handle arrays are on the stack, an output's gradient, if autograd ever leaves it undefined, is made from its
/// recorded shape, and a call that needs no gradient makes no node at all.
/// <para>A subclass instance is one call: it keeps what backward needs besides the saved tensors.</para>
/// </summary>
internal abstract unsafe class KernelNode
{
    Slot? _slot;
    IntPtr[] _saved = Array.Empty<IntPtr>();
    int _inputCount;
    long[] _outputShape = Array.Empty<long>();
    ScalarType _outputDtype;
    Device? _outputDevice;

    /// <summary>
    /// The gradient of each tensor input of <see cref="Forward"/>, in order (null for none). Runs inside its own dispose
    /// scope: tensors it makes and does not return are released when it ends, returned ones are kept for autograd.
    /// </summary>
    protected abstract Tensor?[] Backward(Tensor gradOutput);

    /// <summary><paramref name="t"/> itself when contiguous (no new handle), else a contiguous copy: what the kernels read.</summary>
    protected static Tensor Contiguous(Tensor t) => t.is_contiguous() ? t : t.contiguous();

    /// <summary>The incoming gradient as the kernels read it: in <paramref name="dtype"/> and contiguous (itself when it is).</summary>
    protected static Tensor Incoming(Tensor gradOutput, ScalarType dtype) =>
        gradOutput.dtype == dtype && gradOutput.is_contiguous() ? gradOutput : gradOutput.to(dtype).contiguous();

    /// <summary>The <paramref name="index"/>-th tensor <see cref="Forward"/>'s body saved (a handle of backward's scope).</summary>
    protected Tensor Saved(int index)
    {
        var handle = THSAutograd_SavedVariable_unpack(_saved[index], _slot!.Handle);
        if (handle == IntPtr.Zero) ThrowIfFailed("unpacking a saved tensor");
        return Tensor.UnsafeCreateTensor(handle);
    }

    /// <summary>
    /// Runs <paramref name="body"/> with grad mode off and returns its output recorded for autograd: gradients flow back
    /// to <paramref name="inputs"/> through <see cref="Backward"/>, which can read the tensors the body saved. With
    /// <paramref name="outputIsDirtyInput"/> the body changed its first input in place and returns it (RoPE). When no
    /// input needs a gradient (or grad mode is off) no node is made and the body's output is returned as it is.
    /// </summary>
    protected Tensor Forward(Tensor[] inputs, Func<(Tensor Output, Tensor[] Saved)> body, bool outputIsDirtyInput = false)
    {
        int count = inputs.Length;
        IntPtr* handles = stackalloc IntPtr[count];
        bool record = false;
        bool gradEnabled = THSAutograd_isGradEnabled() != 0;
        for (int i = 0; i < count; i++)
        {
            handles[i] = inputs[i].Handle;
            if (gradEnabled && !record) record = THSTensor_requires_grad(handles[i]) != 0;
        }
        var inputArray = new TensorArray { Items = handles, Count = count };
        if (!record)
        {
            var (plain, _) = body();
            // A tensor changed in place gets its version bumped all the same, as TorchSharp's Function does.
            if (outputIsDirtyInput) Wrap(inputArray, plain, dirty: true, default).Dispose();
            return plain;
        }

        var slot = Slot.Rent(this);
        _slot = slot;
        _inputCount = count;
        slot.Handle = THSAutograd_CSharpNode_ctor(slot.ApplyPointer, slot.DeletePointer);
        if (slot.Handle.Shared == IntPtr.Zero)
        {
            slot.Return();
            ThrowIfFailed("creating an autograd node");
            throw new InvalidOperationException("creating an autograd node failed");
        }
        try
        {
            THSAutograd_CSharpNode_setNextEdges(slot.Handle, inputArray, 1);
            ThrowIfFailed("connecting an autograd node to its inputs");
            (Tensor Output, Tensor[] Saved) produced;
            THSAutograd_setGrad(0);
            try
            {
                produced = body();
            }
            finally
            {
                THSAutograd_setGrad(1);
            }
            var output = Wrap(inputArray, produced.Output, outputIsDirtyInput, slot.Handle);
            _outputShape = output.shape;
            _outputDtype = output.dtype;
            _outputDevice = output.device;
            _saved = new IntPtr[produced.Saved.Length];
            for (int i = 0; i < _saved.Length; i++)
            {
                _saved[i] = THSAutograd_SavedVariable_ctor(produced.Saved[i].Handle, slot.Handle, 0);
                ThrowIfFailed("saving a tensor for backward");
            }
            return output;
        }
        finally
        {
            // From here on the graph owns the node (through the output); with no output (a failure above) it is deleted
            // now, and its slot goes back to the pool, so the slot is not touched after this.
            var owning = slot.Handle;
            slot.Handle.Shared = IntPtr.Zero;
            THSAutograd_CSharpNode_disposeSharedPtr(owning);
        }
    }

    static Tensor Wrap(TensorArray inputs, Tensor output, bool dirty, NodeHandle node)
    {
        IntPtr outputHandle = output.Handle;
        var outputs = new TensorArray { Items = &outputHandle, Count = 1 };
        THSAutograd_Function_wrapOutputs(inputs, TensorArray.Empty, dirty ? outputs : TensorArray.Empty, outputs, node,
            (IntPtr)(delegate* unmanaged<nuint, IntPtr*>)&AllocateResults);
        ThrowIfFailed("attaching an autograd node to its output");
        return Tensor.UnsafeCreateTensor(_results[0]);
    }

    [ThreadStatic] static IntPtr* _results;

    [UnmanagedCallersOnly]
    static IntPtr* AllocateResults(nuint count)
    {
        // One output per call: the wrapped output's handle comes back here.
        if (_results == null) _results = (IntPtr*)NativeMemory.AllocZeroed(4, (nuint)sizeof(IntPtr));
        return count <= 4 ? _results : null;
    }

    TensorArray ApplyBackward(IntPtr* gradients, int count, Slot slot)
    {
        using var scope = NewDisposeScope();
        var wrapped = new Tensor?[count];
        for (int i = 0; i < count; i++) wrapped[i] = gradients[i] == IntPtr.Zero ? null : Tensor.UnsafeCreateTensor(gradients[i]);
        var gradOutput = wrapped[0] ?? zeros(_outputShape, _outputDtype, _outputDevice);
        var result = Backward(gradOutput);
        if (result.Length != _inputCount)
            throw new InvalidOperationException($"{GetType().Name} returned {result.Length} gradients for {_inputCount} inputs");
        ReturnedGradients.Hand(result);
        var items = slot.ReturnBuffer(_inputCount);
        for (int i = 0; i < _inputCount; i++) items[i] = result[i]?.Handle ?? IntPtr.Zero;
        return new TensorArray { Items = items, Count = _inputCount };
    }

    void ReleaseSaved()
    {
        foreach (var saved in _saved) THSAutograd_SavedVariable_dispose(saved);
        _saved = Array.Empty<IntPtr>();
    }

    static Exception? _failure;

    /// <summary>
    /// Runs <c>loss.backward()</c>. An exception inside a kernel node's backward cannot cross into libtorch, so the node
    /// keeps it and hands libtorch one gradient too many, which fails the backward; that failure is replaced here by the
    /// node's own exception (without this, libtorch's "invalid number of gradients" is what the caller sees).
    /// </summary>
    public static void RunBackward(Tensor loss)
    {
        Interlocked.Exchange(ref _failure, null);
        try
        {
            loss.backward();
        }
        catch (Exception) when (Interlocked.Exchange(ref _failure, null) is { } failure)
        {
            ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    /// <summary>Slots ever made (they are reused, so this is the most nodes alive at once so far): for tests.</summary>
    internal static int SlotsMade => Slot.Made;

    /// <summary>
    /// A pair of native thunks (backward, delete) made once and lent to one node at a time: the C node takes bare function
    /// pointers without a context argument, so each live node needs its own pair (TorchSharp's Function marshals two
    /// fresh delegates per call).
    /// </summary>
    sealed class Slot
    {
        static readonly object Lock = new();
        static readonly Stack<Slot> Free = new();
        static readonly List<Slot> All = new(); // keeps the delegates, and so the thunks, alive
        internal static int Made
        {
            get
            {
                lock (Lock) return All.Count;
            }
        }

        readonly ApplyCallback _apply;
        readonly DeleteCallback _delete;
        public readonly IntPtr ApplyPointer, DeletePointer;
        public NodeHandle Handle;
        KernelNode? _node;
        IntPtr* _buffer;
        int _capacity;

        Slot()
        {
            _apply = OnApply;
            _delete = OnDelete;
            ApplyPointer = Marshal.GetFunctionPointerForDelegate(_apply);
            DeletePointer = Marshal.GetFunctionPointerForDelegate(_delete);
        }

        public static Slot Rent(KernelNode node)
        {
            Slot slot;
            lock (Lock)
            {
                if (!Free.TryPop(out slot!))
                {
                    slot = new Slot();
                    All.Add(slot);
                }
            }
            slot._node = node;
            return slot;
        }

        public void Return()
        {
            _node = null;
            Handle = default;
            lock (Lock) Free.Push(this);
        }

        /// <summary>Room for <paramref name="count"/> handles plus one (the failure signal), zeroed.</summary>
        public IntPtr* ReturnBuffer(int count)
        {
            if (_capacity < count + 1)
            {
                NativeMemory.Free(_buffer);
                _capacity = count + 1;
                _buffer = (IntPtr*)NativeMemory.Alloc((nuint)_capacity, (nuint)sizeof(IntPtr));
            }
            NativeMemory.Clear(_buffer, (nuint)(_capacity * sizeof(IntPtr)));
            return _buffer;
        }

        TensorArray OnApply(IntPtr* gradients, int count)
        {
            var node = _node!;
            try
            {
                return node.ApplyBackward(gradients, count, this);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, e, null);
                // One undefined gradient more than the node has inputs: libtorch's engine rejects the count and fails
                // the backward, which RunBackward(loss) turns back into e.
                return new TensorArray { Items = ReturnBuffer(node._inputCount), Count = node._inputCount + 1 };
            }
        }

        void OnDelete()
        {
            try
            {
                _node?.ReleaseSaved();
                THSAutograd_CSharpNode_disposeWeakPtr(Handle);
            }
            catch (Exception)
            {
                // Called from libtorch's destructor: nothing may escape, and nothing is left to undo.
            }
            Return();
        }
    }
}
