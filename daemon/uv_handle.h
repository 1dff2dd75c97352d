// Move-only owners of libuv handles and requests.
//
// A handle's memory may be freed only in its close callback, after libuv is
// done with it; UvHandle closes on destruction and deletes in that callback,
// so an owner can go away at any time without the loop touching freed memory.
// Callbacks recover their owner from handle->data; every trampoline is
// noexcept and catches everything (no exception crosses a C frame).
#pragma once

#include <uv.h>

#include <string>
#include <utility>

namespace etld::daemon {

template <typename H>
class UvHandle {
public:
    UvHandle() : h_(new H{}) {}
    UvHandle(UvHandle&& o) noexcept
        : h_(std::exchange(o.h_, nullptr)), initialized_(std::exchange(o.initialized_, false)) {}
    UvHandle& operator=(UvHandle&&) = delete;
    UvHandle(const UvHandle&) = delete;
    UvHandle& operator=(const UvHandle&) = delete;
    ~UvHandle() { close(); }

    H* get() const { return h_; }
    uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(h_); }
    uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(h_); }
    // Call once the uv_*_init succeeded: from then on it must be uv_close()d.
    void markInitialized() { initialized_ = true; }
    bool active() const { return h_ != nullptr; }

    void close() {
        if (!h_) return;
        if (initialized_) {
            if (!uv_is_closing(handle()))
                uv_close(handle(), [](uv_handle_t* h) { delete reinterpret_cast<H*>(h); });
        } else {
            delete h_;
        }
        h_ = nullptr;
        initialized_ = false;
    }

private:
    H* h_;
    bool initialized_ = false;
};

// A write request that owns its bytes; freed in its callback.
struct WriteRequest {
    uv_write_t req{};
    std::string bytes;
};

}  // namespace etld::daemon
