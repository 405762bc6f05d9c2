// The persistent worker pool (see thread_pool.h for the thread rule).
#include "thread_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#if defined(__linux__)
#include <dlfcn.h>
#include <sched.h>
#endif

namespace engine {

namespace {
thread_local bool t_in_parallel_region = false;

struct RegionFlag
{
    bool saved = t_in_parallel_region;
    RegionFlag() { t_in_parallel_region = true; }
    ~RegionFlag() { t_in_parallel_region = saved; }
};
} // namespace

bool ThreadPool::in_parallel_region() { return t_in_parallel_region; }

namespace {
// Runs task(i) for indices claimed one at a time from `next` until `tasks` are taken. The first exception is kept
// in `error` (under `error_mutex`) and ends the claiming: a failed job starts no more tasks. Shared by the pool's
// own workers and the OpenMP team.
void claim_tasks(std::atomic<int64_t>& next, int64_t tasks, FunctionRef<void(int64_t)>& task, std::mutex& error_mutex,
                 std::exception_ptr& error)
{
    for (;;)
    {
        const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
        if (i >= tasks) return;
        try
        {
            task(i);
        }
        catch (...) // also: an exception must not leave an OpenMP region
        {
            std::lock_guard<std::mutex> lk(error_mutex);
            if (!error) error = std::current_exception();
            next.store(tasks, std::memory_order_relaxed);
        }
    }
}

// The two libgomp entry points a job needs (GCC's OpenMP ABI, stable since GCC 4.9).
struct OpenMpRuntime
{
    void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
    std::string path;
};
std::atomic<const OpenMpRuntime*> g_openmp{nullptr};

// One job on the OpenMP team: tasks claimed one at a time, as on the pool's own workers.
struct OpenMpJob
{
    FunctionRef<void(int64_t)>* task;
    int64_t tasks;
    std::atomic<int64_t> next{0};
    std::mutex error_mutex;
    std::exception_ptr error;
};

void run_openmp_job(void* data)
{
    auto& job = *static_cast<OpenMpJob*>(data);
    RegionFlag region;
    claim_tasks(job.next, job.tasks, *job.task, job.error_mutex, job.error);
}
} // namespace

bool ThreadPool::use_openmp_runtime(const char* path)
{
    if (path == nullptr)
    {
        g_openmp.store(nullptr, std::memory_order_release);
        return true;
    }
#if defined(__linux__)
    // RTLD_NOLOAD: only a runtime already in the process (a second libgomp would be a second team of threads).
    void* handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (handle == nullptr) return false;
    void* parallel = dlsym(handle, "GOMP_parallel");
    if (parallel == nullptr)
    {
        dlclose(handle);
        return false;
    }
    // Kept for the life of the process (the handle too): a job may still hold the previous one.
    auto* runtime = new OpenMpRuntime{reinterpret_cast<decltype(OpenMpRuntime::parallel)>(parallel), path};
    g_openmp.store(runtime, std::memory_order_release);
    return true;
#else
    return false;
#endif
}

const char* ThreadPool::openmp_runtime()
{
    const OpenMpRuntime* runtime = g_openmp.load(std::memory_order_acquire);
    return runtime ? runtime->path.c_str() : nullptr;
}

void ThreadPool::run_on_openmp(int64_t tasks, FunctionRef<void(int64_t)>& task)
{
    OpenMpJob job;
    job.task = &task;
    job.tasks = tasks;
    const auto threads = static_cast<unsigned>(std::min<int64_t>(participants(), tasks));
    g_openmp.load(std::memory_order_acquire)->parallel(&run_openmp_job, &job, threads, 0);
    if (job.error) std::rethrow_exception(job.error);
}

ThreadPool::ThreadPool(int participants) { start_workers(std::max(1, participants) - 1); }

ThreadPool::~ThreadPool()
{
    std::lock_guard<std::mutex> job(job_mutex_);
    stop_workers();
}

void ThreadPool::resize(int participants)
{
    participants = std::max(1, participants);
    std::lock_guard<std::mutex> job(job_mutex_);
    if (participants == this->participants()) return;
    stop_workers();
    start_workers(participants - 1);
}

void ThreadPool::start_workers(int count)
{
    uint64_t generation;
    {
        std::lock_guard<std::mutex> lk(state_mutex_);
        stopping_ = false;
        generation = generation_;
    }
    workers_.reserve(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) workers_.emplace_back([this, i, generation] { worker_loop(i, generation); });
    participants_.store(count + 1, std::memory_order_relaxed);
}

void ThreadPool::stop_workers()
{
    {
        std::lock_guard<std::mutex> lk(state_mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    participants_.store(1, std::memory_order_relaxed);
}

void ThreadPool::worker_loop(int index, uint64_t seen)
{
    t_in_parallel_region = true; // a worker only ever runs tasks: anything it calls that is parallel runs inline
    for (;;)
    {
        {
            std::unique_lock<std::mutex> lk(state_mutex_);
            wake_.wait(lk, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) return;
            seen = generation_;
            if (index >= active_workers_) continue; // a job with fewer tasks than threads: stay asleep
        }
        work_on_current_job();
        std::lock_guard<std::mutex> lk(state_mutex_);
        if (--busy_workers_ == 0) done_.notify_one();
    }
}

void ThreadPool::work_on_current_job() { claim_tasks(next_task_, tasks_, *task_, state_mutex_, error_); }

void ThreadPool::run(int64_t tasks, FunctionRef<void(int64_t)> task)
{
    if (tasks <= 0) return;
    auto run_inline = [&] {
        RegionFlag region;
        for (int64_t i = 0; i < tasks; ++i) task(i);
    };
    if (tasks == 1 || t_in_parallel_region)
    {
        run_inline();
        return;
    }
    // Another thread's job holds the pool: run on this thread rather than wait (and never add threads).
    std::unique_lock<std::mutex> job(job_mutex_, std::try_to_lock);
    if (!job.owns_lock() || workers_.empty())
    {
        run_inline();
        return;
    }
    if (g_openmp.load(std::memory_order_acquire) != nullptr)
    {
        run_on_openmp(tasks, task);
        return;
    }
    {
        std::lock_guard<std::mutex> lk(state_mutex_);
        task_ = &task;
        tasks_ = tasks;
        next_task_.store(0, std::memory_order_relaxed);
        error_ = nullptr;
        active_workers_ = static_cast<int>(std::min<int64_t>(static_cast<int64_t>(workers_.size()), tasks - 1));
        busy_workers_ = active_workers_;
        ++generation_;
    }
    wake_.notify_all();
    {
        RegionFlag region;
        work_on_current_job();
    }
    std::exception_ptr error;
    {
        std::unique_lock<std::mutex> lk(state_mutex_);
        done_.wait(lk, [&] { return busy_workers_ == 0; });
        task_ = nullptr;
        std::swap(error, error_);
    }
    if (error) std::rethrow_exception(error);
}

const char* share_openmp_runtime()
{
    if (const char* off = std::getenv("ENGINE_NATIVE_OPENMP"); off != nullptr && std::strcmp(off, "0") == 0) return nullptr;
    if (const char* bound = ThreadPool::openmp_runtime()) return bound;
#if defined(__linux__)
    std::string torch_dir;
    std::vector<std::string> runtimes;
    if (FILE* maps = std::fopen("/proc/self/maps", "r"))
    {
        char line[4096];
        while (std::fgets(line, sizeof line, maps))
        {
            const char* slash = std::strchr(line, '/');
            if (slash == nullptr) continue;
            std::string path(slash);
            while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
            const std::string name = path.substr(path.rfind('/') + 1);
            if (name.rfind("libtorch_cpu.so", 0) == 0) torch_dir = path.substr(0, path.rfind('/') + 1);
            else if (name.rfind("libgomp", 0) == 0 && name.find(".so") != std::string::npos &&
                     std::find(runtimes.begin(), runtimes.end(), path) == runtimes.end())
                runtimes.push_back(path);
        }
        std::fclose(maps);
    }
    // libtorch's own libgomp first (a wheel names it libgomp-<hash>.so.1 and keeps it beside libtorch_cpu.so).
    std::stable_partition(runtimes.begin(), runtimes.end(),
                          [&](const std::string& p) { return !torch_dir.empty() && p.rfind(torch_dir, 0) == 0; });
    for (const std::string& path : runtimes)
        if (ThreadPool::use_openmp_runtime(path.c_str())) return ThreadPool::openmp_runtime();
#endif
    return nullptr;
}

int default_threads()
{
    if (const char* env = std::getenv("ENGINE_NATIVE_THREADS"))
    {
        const int n = std::atoi(env);
        if (n > 0) return n;
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

ThreadPool& global_pool()
{
    // Never destroyed: joining workers from a static destructor at process exit could race with a runtime
    // (.NET) that is still calling in from other threads. The OS reclaims the sleeping workers.
    static ThreadPool* pool = new ThreadPool(default_threads());
    return *pool;
}

void set_threads(int threads) { global_pool().resize(threads > 0 ? threads : default_threads()); }

int threads() { return global_pool().participants(); }

void parallel_for(int64_t begin, int64_t end, int64_t grain, FunctionRef<void(int64_t, int64_t)> body)
{
    const int64_t n = end - begin;
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    ThreadPool& pool = global_pool();
    const int participants = pool.participants();
    if (n < 2 * grain || participants == 1 || ThreadPool::in_parallel_region())
    {
        body(begin, end);
        return;
    }
    // Several ranges per participant: one slowed by another process on a shared machine takes fewer of them.
    constexpr int64_t kRangesPerParticipant = 4;
    const int64_t parts = std::min<int64_t>(n / grain, participants * kRangesPerParticipant);
    pool.run(parts, [&](int64_t i) { body(begin + n * i / parts, begin + n * (i + 1) / parts); });
}

} // namespace engine
