// The kernels' worker pool: every task runs exactly once, the workers persist between jobs, nesting and
// concurrent callers run inline instead of deadlocking, errors reach the caller, resizing works.
#include "test_util.h"
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <dlfcn.h>
#include <dirent.h>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using engine::ThreadPool;
using testing_util::process_threads;

TEST_CASE(pool_runs_every_task_once)
{
    for (int participants : {1, 2, 3, 8})
    {
        ThreadPool pool(participants);
        CHECK(pool.participants() == participants);
        for (int64_t tasks : {0, 1, 2, 7, 64, 1001})
        {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
            pool.run(tasks, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
            for (int64_t i = 0; i < tasks; ++i)
                CHECK_CLOSE(hits[static_cast<size_t>(i)].load(), 1, 0, 0,
                            "participants " + std::to_string(participants) + " tasks " + std::to_string(tasks) + " task " + std::to_string(i));
        }
    }
}

TEST_CASE(pool_keeps_its_threads_between_jobs)
{
    ThreadPool pool(3);
    const std::set<std::string> before = process_threads();
    std::mutex m;
    std::set<std::thread::id> ran_on;
    for (int job = 0; job < 200; ++job)
    {
        pool.run(64, [&](int64_t) {
            std::lock_guard<std::mutex> lk(m);
            ran_on.insert(std::this_thread::get_id());
            // Long enough that every participant takes some tasks.
            volatile double x = 0;
            for (int k = 0; k < 2000; ++k) x = x + k;
        });
        // No thread is created or ended by a job: the process has exactly the same threads after it.
        CHECK(process_threads() == before);
    }
    CHECK(before.size() >= 3); // this thread + 2 workers
    CHECK(ran_on.size() <= 3);
    CHECK(ran_on.count(std::this_thread::get_id()) == 1); // the caller takes part
}

TEST_CASE(pool_nested_jobs_run_inline)
{
    ThreadPool pool(4);
    std::atomic<int> inner{0}, in_region{0}, single_range{0};
    std::atomic<bool> all_inline{true};
    pool.run(8, [&](int64_t) {
        if (ThreadPool::in_parallel_region()) in_region.fetch_add(1);
        const auto me = std::this_thread::get_id();
        pool.run(5, [&](int64_t) {
            if (std::this_thread::get_id() != me) all_inline = false;
            inner.fetch_add(1);
        });
        // parallel_for on the global pool from inside a job: inline too, as one range.
        int ranges = 0;
        bool whole = false;
        engine::parallel_for(0, 1000, 1, [&](int64_t b, int64_t e) { ++ranges; whole = b == 0 && e == 1000; });
        if (ranges == 1 && whole) single_range.fetch_add(1);
    });
    CHECK(inner.load() == 40);
    CHECK(in_region.load() == 8);
    CHECK(single_range.load() == 8);
    CHECK(all_inline.load());
    CHECK(!ThreadPool::in_parallel_region());
}

TEST_CASE(pool_concurrent_callers_all_finish)
{
    ThreadPool pool(3);
    std::vector<std::thread> callers;
    std::vector<int64_t> sums(6, 0);
    for (int c = 0; c < 6; ++c)
        callers.emplace_back([&, c] {
            for (int job = 0; job < 50; ++job)
            {
                std::atomic<int64_t> sum{0};
                pool.run(100, [&](int64_t i) { sum.fetch_add(i); });
                sums[static_cast<size_t>(c)] += sum.load();
            }
        });
    for (auto& t : callers) t.join();
    for (int64_t s : sums) CHECK(s == 50 * 4950);
}

TEST_CASE(pool_errors_reach_the_caller)
{
    ThreadPool pool(3);
    bool caught = false;
    try
    {
        pool.run(100, [&](int64_t i) {
            if (i == 37) throw std::runtime_error("task 37 failed");
        });
    }
    catch (const std::runtime_error& e)
    {
        caught = std::string(e.what()) == "task 37 failed";
    }
    CHECK(caught);
    // The pool still works afterwards.
    std::atomic<int> n{0};
    pool.run(10, [&](int64_t) { n.fetch_add(1); });
    CHECK(n.load() == 10);
}

TEST_CASE(pool_resizes)
{
    ThreadPool pool(2);
    for (int participants : {5, 1, 3})
    {
        pool.resize(participants);
        CHECK(pool.participants() == participants);
        std::mutex m;
        std::set<std::thread::id> ran_on;
        std::atomic<int> n{0};
        pool.run(200, [&](int64_t) {
            { std::lock_guard<std::mutex> lk(m); ran_on.insert(std::this_thread::get_id()); }
            n.fetch_add(1);
        });
        CHECK(n.load() == 200);
        CHECK(static_cast<int>(ran_on.size()) <= participants);
    }
}

TEST_CASE(parallel_for_covers_the_range_in_grains)
{
    for (int threads : {1, 2, 3})
    {
        engine::set_threads(threads);
        CHECK(engine::threads() == threads);
        for (int64_t n : {0, 1, 5, 99, 1000, 12345})
            for (int64_t grain : {1, 7, 100, 5000})
            {
                std::mutex m;
                std::vector<std::pair<int64_t, int64_t>> ranges;
                engine::parallel_for(10, 10 + n, grain, [&](int64_t b, int64_t e) {
                    std::lock_guard<std::mutex> lk(m);
                    ranges.emplace_back(b, e);
                });
                std::sort(ranges.begin(), ranges.end());
                const std::string where = "threads " + std::to_string(threads) + " n " + std::to_string(n) + " grain " + std::to_string(grain);
                int64_t next = 10;
                for (auto [b, e] : ranges)
                {
                    CHECK_CLOSE(b, next, 0, 0, where + " contiguous");
                    CHECK(e > b);
                    if (ranges.size() > 1) CHECK_CLOSE(std::min<int64_t>(e - b, grain), grain, 0, 0, where + " at least a grain");
                    next = e;
                }
                CHECK_CLOSE(next, 10 + n, 0, 0, where + " covered");
                if (n < 2 * grain || threads == 1) CHECK(ranges.size() <= 1);
                else CHECK(ranges.size() >= 2);
                CHECK(static_cast<int64_t>(ranges.size()) <= std::max<int64_t>(1, 4 * threads));
            }
    }
    engine::set_threads(0);
    CHECK(engine::threads() == engine::default_threads());
}

// libtorch's libgomp stands in as the system's: once a libgomp is loaded, jobs run as its regions (the OpenMP team
// takes the tasks), every task still once, nesting inline, errors to the caller; unbound, the pool's own workers.
TEST_CASE(pool_runs_jobs_on_a_loaded_openmp_runtime)
{
    CHECK(!ThreadPool::use_openmp_runtime("/no/such/libgomp.so.1")); // not loaded: refused
    CHECK(ThreadPool::openmp_runtime() == nullptr);
    void* gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_LOCAL);
    if (gomp == nullptr) throw std::runtime_error(std::string("libgomp.so.1 (package libgomp1, installed with g++) would not load: ") + dlerror());
    auto omp_thread_num = reinterpret_cast<int (*)()>(dlsym(gomp, "omp_get_thread_num"));
    CHECK(omp_thread_num != nullptr);
    const char* runtime = engine::share_openmp_runtime();
    CHECK(runtime != nullptr && std::string(runtime).find("libgomp") != std::string::npos);
    CHECK(ThreadPool::openmp_runtime() == runtime);

    for (bool shared : {true, false})
    {
        if (!shared) CHECK(ThreadPool::use_openmp_runtime(nullptr) && ThreadPool::openmp_runtime() == nullptr);
        ThreadPool pool(3);
        const int64_t tasks = 64;
        std::vector<std::atomic<int>> hits(tasks);
        std::atomic<int> on_team_workers{0}, outside_region{0};
        pool.run(tasks, [&](int64_t i) {
            hits[static_cast<size_t>(i)].fetch_add(1);
            if (omp_thread_num() > 0) on_team_workers.fetch_add(1);
            if (!ThreadPool::in_parallel_region()) outside_region.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::microseconds(500)); // every participant gets some
        });
        for (int64_t i = 0; i < tasks; ++i) CHECK(hits[static_cast<size_t>(i)].load() == 1);
        CHECK(outside_region.load() == 0);
        if (shared) CHECK(on_team_workers.load() > 0);
        else CHECK(on_team_workers.load() == 0);

        // Nested jobs run inline on the task's thread; a task's exception reaches the caller.
        std::atomic<int> nested_elsewhere{0};
        pool.run(8, [&](int64_t) {
            const auto me = std::this_thread::get_id();
            pool.run(4, [&](int64_t) { if (std::this_thread::get_id() != me) nested_elsewhere.fetch_add(1); });
        });
        CHECK(nested_elsewhere.load() == 0);
        bool caught = false;
        try
        {
            pool.run(16, [&](int64_t i) { if (i == 5) throw std::runtime_error("task 5"); });
        }
        catch (const std::runtime_error& e)
        {
            caught = std::string(e.what()) == "task 5";
        }
        CHECK(caught);
    }

    // ENGINE_NATIVE_OPENMP=0 keeps the pool's own workers even with a runtime loaded.
    setenv("ENGINE_NATIVE_OPENMP", "0", 1);
    CHECK(engine::share_openmp_runtime() == nullptr && ThreadPool::openmp_runtime() == nullptr);
    unsetenv("ENGINE_NATIVE_OPENMP");
}

int main(int argc, char** argv) { return testing_util::run_main(argc, argv); }
