// The Daemon's side of systemd: the service-manager link, the start-up
// migrations' timeout extension, and the SIGHUP reload of the price table.
// Kept apart from daemon.cpp so the lifecycle there stays readable; every
// function here runs on the loop thread unless it says otherwise.
//
// The reload and the writer thread: the ingest engine holds a reference to
// prices_ and reads it inside writer tasks and on its read-ahead helper, which
// a cycle may leave running between tasks. A reload is therefore itself a
// writer task: it reads and parses the file on the writer thread (the loop
// never waits on the disk), stops that helper (dropping what it parsed with
// the old table) and swaps prices_ there, between two tasks, so nothing ever
// sees a table half-replaced and no lock is needed. The loop thread never
// touches prices_ after start(). Costs are computed once, when an event is
// parsed for writing: the new table prices what is written from then on.
#include <csignal>

#include "daemon.h"
#include "etld_config.h"
#include "log.h"

namespace etld::daemon {
namespace {

// What one start-up migration may add to TimeoutStartSec=: rebuilding a
// table of millions of events takes minutes on a slow disk; more would hide
// a real hang from the manager for too long.
constexpr std::int64_t kMigrationExtendUsec = 10LL * 60 * 1000 * 1000;

// The embedded table, overridden by --pricing when given (writer thread on
// reload, loop thread at start-up).
}  // namespace

void Daemon::startServiceManager() {
    systemd_ = std::make_unique<ServiceManager>(
        &loop_, ServiceManager::Hooks{[this](std::int64_t maxStepMicros) {
                                          return !writer_ || writer_->healthy(maxStepMicros);
                                      },
                                      [this] { return statusSummary(state_, clock_.now()); }});
}

store::WriterOptions Daemon::storeOpenOptions() {
    store::WriterOptions o;
    o.beforeMigration = [this](std::int64_t version) {
        log::info("migrating the store to schema version " + std::to_string(version));
        systemd_->extendStartTimeout(
            kMigrationExtendUsec,
            "migrating the store to schema version " + std::to_string(version));
    };
    return o;
}

void Daemon::onReloadSignal(uv_signal_t* handle, int) noexcept {
    try {
        static_cast<Daemon*>(handle->data)->reloadPricing();
    } catch (const std::exception& e) {
        log::error(std::string("reload failed: ") + e.what());
    }
}

void Daemon::reloadPricing() {
    if (stopping_ || !writer_) return;
    log::info(options_.pricingFile.empty()
                  ? "SIGHUP: reloading the price table (embedded only, no --pricing)"
                  : "SIGHUP: reloading the price table from " + options_.pricingFile);
    systemd_->reloading();
    // Writer thread: read, parse, swap (see the comment at the top).
    writer_->post(
        [file = options_.pricingFile, prices = &prices_,
         engine = ingest_.get()](store::Connection&) -> Status {
            auto table = sources::PriceTable::load(file);
            if (!table) return table.error();
            engine->dropReadAhead();
            *prices = std::move(table).value();
            return {};
        },
        [this](const Status& st) {
            if (st) {
                log::info("price table reloaded; it prices events written from now on");
            } else {
                log::error(st.error().message + ", keeping the previous price table");
            }
            systemd_->reloaded();
        });
}

}  // namespace etld::daemon
