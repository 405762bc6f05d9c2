// Tests run one at a time. TorchSharp frees implicitly converted Scalars (x * 0.5, t / n) from finalizers; while
// one test thread is inside a native call, a GC triggered by another test thread can finalize the Scalar that
// call is still reading (seen as rare "toLong" failures in libtorch). One torch thread at a time avoids the race,
// and libtorch already uses every core within each operation.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
