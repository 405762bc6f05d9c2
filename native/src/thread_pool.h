// A persistent worker pool and parallel_for for the CPU kernels of libengine_native.
//
// Why persistent: spawning and joining threads on every kernel call costs tens of microseconds per thread and
// a fresh stack each time; kernels called once per layer per step (log-prob, norms, optimiser updates) pay
// that again and again. The workers here are created once and sleep on a condition variable between jobs.
//
// The thread rule (docs/kernels.md, "Threads"): the pool has as many participants as libtorch's intra-op
// pool (the C# side passes torch.get_num_threads() through engine_set_threads), the calling thread being one
// of them. Native kernels are called between torch operations, never from inside a libtorch parallel region.
// A parallel_for nested inside another (or called while another thread's job holds the pool) runs on its
// caller's thread: it never waits for the pool and never adds threads.
//
// Between torch operations libtorch's OpenMP workers do not sleep at once: libgomp spins them for a while (up to
// milliseconds) waiting for the next region. Our own workers would then share cores with spinning threads, and a
// kernel right after a torch op ran at up to half speed. So where the process has an OpenMP runtime loaded
// (libtorch's libgomp), share_openmp_runtime() makes every job run as a region of that runtime instead: the
// spinning workers take our tasks at once, and torch's and ours are one team that takes turns.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace engine {

// A non-owning reference to a callable: no allocation per call, unlike std::function.
template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)>
{
public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
    FunctionRef(F&& f) noexcept // NOLINT: implicit by design, like std::function
        : object_(const_cast<void*>(static_cast<const void*>(&f))),
          call_([](void* o, Args... args) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...); })
    {
    }
    R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

private:
    void* object_;
    R (*call_)(void*, Args...);
};

class ThreadPool
{
public:
    // `participants` threads run each job: the caller plus participants - 1 workers (at least 1 in all).
    explicit ThreadPool(int participants);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int participants() const { return participants_.load(std::memory_order_relaxed); }
    // Changes the number of participants; waits for a running job to finish first.
    void resize(int participants);

    // Runs task(i) once for every i in [0, tasks), spread over the participants (tasks are claimed one at a
    // time, so a participant slowed by another process simply takes fewer). Returns when all have finished.
    // The first exception thrown by a task is rethrown here after the others finish. Runs inline (on this
    // thread, in order) when there is one participant, one task, or when called from inside a job.
    void run(int64_t tasks, FunctionRef<void(int64_t)> task);

    // True on a thread that is executing a task of some ThreadPool job (worker or participating caller).
    static bool in_parallel_region();

    // Jobs run as regions of the OpenMP runtime (libgomp) at `path`, which must already be loaded in the process;
    // nullptr goes back to the pool's own workers. Returns false (and changes nothing) when the library is not
    // loaded or lacks the entry points.
    static bool use_openmp_runtime(const char* path);
    // The path of the OpenMP runtime jobs run on, or nullptr (the pool's own workers).
    static const char* openmp_runtime();

private:
    void start_workers(int count);
    void stop_workers();
    void worker_loop(int index, uint64_t generation);
    void work_on_current_job();
    void run_on_openmp(int64_t tasks, FunctionRef<void(int64_t)>& task);

    std::mutex job_mutex_; // one job at a time
    std::mutex state_mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    std::atomic<int> participants_{1};
    bool stopping_ = false;
    uint64_t generation_ = 0;
    // The current job (valid while a generation is running).
    FunctionRef<void(int64_t)>* task_ = nullptr;
    int64_t tasks_ = 0;
    std::atomic<int64_t> next_task_{0};
    int active_workers_ = 0; // workers (by index) that take part in the current job
    int busy_workers_ = 0;   // of those, the ones not yet finished
    std::exception_ptr error_;
};

// The process-wide pool of the kernels, created on first use with default_threads() participants.
ThreadPool& global_pool();
// Finds the OpenMP runtime libtorch loaded (a mapped libgomp, preferring one beside libtorch_cpu) and has every
// pool run its jobs on it (see the top of this file); nullptr when there is none or ENGINE_NATIVE_OPENMP=0.
const char* share_openmp_runtime();
// ENGINE_NATIVE_THREADS when set, otherwise the CPUs this process may run on.
int default_threads();
// Resizes the global pool; threads <= 0 restores default_threads().
void set_threads(int threads);
int threads();

// Runs body(b, e) over contiguous ranges that cover [begin, end) exactly once, each at least `grain` long,
// on the global pool (up to four ranges per participant, claimed dynamically). Ranges depend on the thread count, so a kernel whose result
// must not depend on it keeps its per-element work independent of the range boundaries (as the row kernels do).
// A range smaller than two grains runs inline.
void parallel_for(int64_t begin, int64_t end, int64_t grain, FunctionRef<void(int64_t, int64_t)> body);

} // namespace engine
