#include "daemon.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "etld_config.h"
#include "log.h"
#include "store/schema.h"
#include "store/store.h"
#include "util/paths.h"

namespace etld::daemon {

using protocol::ErrorCode;

Daemon::Daemon(Options options) : options_(std::move(options)) {}

Daemon::~Daemon() {
    if (loopInitialized_) {
        shutdown();
    }
}

int Daemon::run() {
    if (auto st = start(); !st) {
        log::error(st.error().message);
        shutdown();
        return 1;
    }
    log::info("etld " ETLD_VERSION " serving " + options_.storePath + " on " +
              options_.socketPath);
    uv_run(&loop_, UV_RUN_DEFAULT);
    shutdown();
    return 0;
}

Status Daemon::start() {
    if (int rc = uv_loop_init(&loop_); rc != 0)
        return Error{"loop", std::string("cannot start the event loop: ") + uv_strerror(rc)};
    loopInitialized_ = true;
    startedAt_ = clock_.now();

    // The lock comes first: nothing, not even the socket path, is touched by
    // a second daemon.
    if (!makeDirectories(parentDirectory(options_.storePath), 0700))
        return Error{"store_dir", "cannot create the store's directory for " + options_.storePath};
    auto lock = InstanceLock::acquire(lockPathFor(options_.storePath));
    if (!lock) return lock.error();
    lock_.emplace(std::move(lock).value());

    auto db = store::openWriter(options_.storePath);
    if (!db) return Error{db.error().code, "cannot open the store: " + db.error().message};
    if (auto n = store::failInterruptedJobs(*db); !n) {
        return n.error();
    } else if (*n > 0) {
        log::warning("marked " + std::to_string(*n) + " interrupted backfill job(s) failed");
    }
    state_.origin = status::Origin::Daemon;
    state_.storePath = canonicalPath(options_.storePath);
    state_.schemaVersion = store::latestSchemaVersion();
    state_.watcherEnabled = options_.watcherEnabled;
    state_.watcherRunning = options_.watcherEnabled;
    state_.lockHeldBy = getpid();
    state_.daemon = status::DaemonInfo{getpid(), ETLD_VERSION, startedAt_};
    if (auto st = store::readCounters(*db, state_); !st) return st;
    writer_ = std::make_unique<Writer>(&loop_, std::move(db).value());
    recordStateSnapshot();

    control_ = std::make_unique<ControlServer>(&loop_, options_.socketPath);
    registerMethods();
    if (options_.testHooks) registerTestHooks();
    if (auto st = control_->listen(); !st) return st;

    for (auto* sig : {&sigterm_, &sigint_}) {
        uv_signal_init(&loop_, sig->get());
        sig->markInitialized();
        sig->get()->data = this;
    }
    uv_signal_start(sigterm_.get(), &Daemon::onSignal, SIGTERM);
    uv_signal_start(sigint_.get(), &Daemon::onSignal, SIGINT);
    return {};
}

// The one shutdown order: stop accepting and close clients, finish and commit
// what the writer has, stop signals and timers, then turn the loop until every
// handle's close callback ran and the loop closes cleanly.
void Daemon::shutdown() {
    if (!loopInitialized_) return;
    if (control_) control_->close();
    if (writer_) {
        if (lock_) recordStateSnapshot();
        writer_->stop();
    }
    sigterm_.close();
    sigint_.close();
    uv_run(&loop_, UV_RUN_DEFAULT);  // runs the close callbacks
    control_.reset();
    writer_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop_) != 0) log::error("event loop closed with handles still open");
    loopInitialized_ = false;
    lock_.reset();
}

void Daemon::onSignal(uv_signal_t* handle, int signum) noexcept {
    auto* self = static_cast<Daemon*>(handle->data);
    log::info(signum == SIGTERM ? "SIGTERM: shutting down" : "SIGINT: shutting down");
    self->stopping_ = true;
    uv_stop(&self->loop_);
}

status::StatusInput Daemon::statusInput() const { return state_; }

void Daemon::recordStateSnapshot() {
    store::DaemonSnapshot snap;
    snap.pid = getpid();
    snap.version = ETLD_VERSION;
    snap.startedAt = startedAt_;
    snap.watcherEnabled = state_.watcherEnabled;
    snap.lastRefresh = state_.lastRefresh;
    snap.eventsInLastCycle = state_.eventsInLastCycle;
    snap.sources = state_.sources;
    snap.fault = state_.fault;
    snap.recordedAt = clock_.now();
    writer_->post([snap](store::Connection& db) -> Status {
        auto tx = store::Transaction::begin(db);
        if (!tx) return tx.error();
        if (auto st = store::recordDaemonState(db, snap); !st) return st;
        return tx->commit();
    }, [](const Status& st) {
        if (!st) log::warning("cannot record the daemon's state: " + st.error().message + ", skipping");
    });
}

void Daemon::registerMethods() {
    control_->addMethod({"hello", [this](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        auto& a = r.GetAllocator();
        r.AddMember("protocol", protocol::kProtocolVersion, a);
        r.AddMember("version", rapidjson::Value(ETLD_VERSION, a), a);
        r.AddMember("pid", static_cast<std::int64_t>(getpid()), a);
        r.AddMember("store", rapidjson::Value(state_.storePath.c_str(), a), a);
        rapidjson::Value methods(rapidjson::kArrayType);
        for (const auto& m : control_->advertisedMethods()) methods.PushBack(rapidjson::Value(m.c_str(), a), a);
        r.AddMember("methods", methods, a);
        call.reply(r);
    }});
    control_->addMethod({"ping", [](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("pong", true, r.GetAllocator());
        call.reply(r);
    }});
    control_->addMethod({"status", [this](const Call& call) {
        call.reply(status::assembleStatus(state_, clock_.now()));
    }});
}

// Test hooks: methods that exist only when ETLD_TEST_HOOKS was set at
// start-up, never listed by hello. They move the injected clock, wedge the
// loop or the writer, and shorten timeouts, so tests never sleep.
void Daemon::registerTestHooks() {
    log::warning("test hooks are enabled (ETLD_TEST_HOOKS); never run production like this");
    auto intParam = [](const Call& call, const char* name, std::int64_t& out) {
        auto it = call.params().FindMember(name);
        if (it == call.params().MemberEnd() || !it->value.IsInt64()) {
            call.fail(ErrorCode::InvalidParams, std::string("\"") + name + "\" must be an integer");
            return false;
        }
        out = it->value.GetInt64();
        return true;
    };
    auto ok = [](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("ok", true, r.GetAllocator());
        call.reply(r);
    };
    control_->addMethod({"test.advance_clock", [=, this](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        clock_.advance(ms * 1000);
        ok(call);
    }, false});
    control_->addMethod({"test.wedge_loop", [=](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the point: block the loop
        ok(call);
    }, false});
    control_->addMethod({"test.wedge_writer", [=, this](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        writer_->post([ms](store::Connection&) -> Status {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return {};
        });
        ok(call);
    }, false});
    control_->addMethod({"test.set_idle_timeout", [=, this](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        control_->setIdleTimeoutMs(static_cast<std::uint64_t>(ms));
        ok(call);
    }, false});
    control_->addMethod({"test.clients", [this](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("clients", static_cast<std::uint64_t>(control_->clientCount()), r.GetAllocator());
        call.reply(r);
    }, false});
}

}  // namespace etld::daemon
