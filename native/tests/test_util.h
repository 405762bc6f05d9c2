// A minimal test runner: each executable registers named tests; ctest runs one name per process.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace testing_util {

struct Registry
{
    std::vector<std::pair<std::string, std::function<void()>>> tests;
    static Registry& get()
    {
        static Registry r;
        return r;
    }
};

struct Register
{
    Register(const char* name, std::function<void()> fn) { Registry::get().tests.emplace_back(name, std::move(fn)); }
};

inline int failures = 0;
inline int checks = 0;

inline void fail(const char* file, int line, const std::string& message)
{
    ++failures;
    if (failures <= 20) std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, message.c_str());
}

inline int run_main(int argc, char** argv)
{
    auto& tests = Registry::get().tests;
    int ran = 0;
    for (auto& [name, fn] : tests)
    {
        if (argc > 1 && name != argv[1]) continue;
        const int before = failures;
        fn();
        ++ran;
        std::printf("%s: %s (%d checks)\n", name.c_str(), failures == before ? "ok" : "FAILED", checks);
    }
    if (ran == 0)
    {
        std::fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(any)");
        return 2;
    }
    return failures == 0 ? 0 : 1;
}

// The kernel thread ids of this process (Linux: /proc/self/task): tests that threads persist, or are not added.
inline std::set<std::string> process_threads()
{
    std::set<std::string> ids;
    if (DIR* d = opendir("/proc/self/task"))
    {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') ids.insert(e->d_name);
        closedir(d);
    }
    return ids;
}

} // namespace testing_util

#define TEST_CASE(name)                                                      \
    static void name();                                                      \
    static testing_util::Register register_##name(#name, name);              \
    static void name()

#define CHECK(cond)                                                                                   \
    do {                                                                                              \
        ++testing_util::checks;                                                                       \
        if (!(cond)) testing_util::fail(__FILE__, __LINE__, #cond);                                   \
    } while (0)

// |actual - expected| <= atol + rtol * |expected|, with infinities required to match exactly.
#define CHECK_CLOSE(actual, expected, atol, rtol, what)                                                       \
    do {                                                                                                      \
        ++testing_util::checks;                                                                               \
        const double a_ = (actual), e_ = (expected);                                                          \
        bool ok_ = std::isinf(e_) ? a_ == e_ : std::fabs(a_ - e_) <= (atol) + (rtol) * std::fabs(e_);          \
        if (!ok_) {                                                                                           \
            char buf_[512];                                                                                   \
            std::snprintf(buf_, sizeof buf_, "%s: got %.9g, expected %.9g (atol %g, rtol %g)",                \
                          std::string(what).c_str(), a_, e_, (double)(atol), (double)(rtol));                  \
            testing_util::fail(__FILE__, __LINE__, buf_);                                                     \
        }                                                                                                     \
    } while (0)
