// The persistent worker pool (see thread_pool.h for the thread rule).
#include "thread_pool.h"

#include <algorithm>
#include <cstdlib>
#if defined(__linux__)
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

void ThreadPool::work_on_current_job()
{
    for (;;)
    {
        const int64_t i = next_task_.fetch_add(1, std::memory_order_relaxed);
        if (i >= tasks_) return;
        try
        {
            (*task_)(i);
        }
        catch (...)
        {
            std::lock_guard<std::mutex> lk(state_mutex_);
            if (!error_) error_ = std::current_exception();
            next_task_.store(tasks_, std::memory_order_relaxed); // the job has failed: start no more tasks
        }
    }
}

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
