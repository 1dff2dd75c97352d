// The ingest engine against a real store and real files: every file event,
// each also while the daemon is "stopped" (a new engine loading the
// checkpoints), Claude streaming and sidechain merges, and bad input.
// A cycle runs synchronously here; the daemon runs the same call on its
// writer thread.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "event_keys.h"
#include "ingest.h"
#include "store/schema.h"
#include "store/store.h"
#include "support.h"

using namespace etld;
using namespace etld::daemon;
using etld::test::TempDir;

namespace {

std::string claudeLine(const std::string& msgId, const std::string& reqId, int in, int out,
                       const std::string& ts = "2026-01-01T10:00:00.000Z",
                       const std::string& session = "s1", bool sidechain = false) {
    std::string line = R"({"type":"assistant","sessionId":")" + session + R"(",)";
    if (!reqId.empty()) line += R"("requestId":")" + reqId + R"(",)";
    if (sidechain) line += R"("isSidechain":true,)";
    line += R"("timestamp":")" + ts + R"(","version":"1.0.0","cwd":"/p1","message":{"id":")" +
            msgId + R"(","model":"claude-sonnet-4-20250514","usage":{"input_tokens":)" +
            std::to_string(in) + R"(,"output_tokens":)" + std::to_string(out) + "}}}\n";
    return line;
}

void append(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << bytes;
}

void overwrite(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::trunc | std::ios::binary);
    f << bytes;
}

// A store and an engine over <dir>/claude, <dir>/codex, <dir>/gemini.
struct Fixture {
    TempDir dir;
    std::string projects = dir.file("claude/projects/-p1");
    std::string file = projects + "/a.jsonl";
    ManualClock clock{1'700'000'000'000'000};
    sources::PriceTable prices = sources::PriceTable::fromEmbedded().value();
    store::Connection db = store::openWriter(dir.file("etl.db")).value();
    std::unique_ptr<IngestEngine> engine;

    Fixture() {
        makeDirectories(projects, 0755);
        restart();
    }
    std::vector<ProviderRoots> roots() const {
        return {{sources::Provider::Claude, {dir.file("claude")}},
                {sources::Provider::Codex, {dir.file("codex")}},
                {sources::Provider::Gemini, {dir.file("gemini")}}};
    }
    // A daemon restart: a fresh engine that knows only the store.
    void restart() {
        engine = std::make_unique<IngestEngine>(roots(), prices, clock);
        REQUIRE(engine->load(db).ok());
    }
    CycleReport cycle(bool full = true, std::vector<std::string> paths = {}) {
        CycleRequest req;
        req.fullRescan = full;
        req.paths = std::move(paths);
        auto r = engine->runCycle(db, req, {}, {});
        REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
        return *r;
    }
    std::int64_t count(const std::string& where = "1") {
        return db.queryInt("SELECT COUNT(*) FROM usage_events WHERE " + where).value();
    }
    std::int64_t sum(const std::string& col) {
        return db.queryInt("SELECT COALESCE(SUM(" + col + "), 0) FROM usage_events").value();
    }
    std::int64_t maxId() { return db.queryInt("SELECT COALESCE(MAX(id), 0) FROM usage_events").value(); }
    // Each of the `events` stored was written once: no revision took an id
    // and left a retraction.
    void checkWrittenOnce(std::int64_t events) {
        CHECK(count() == events);
        CHECK(maxId() == events);
        CHECK(db.queryInt("SELECT COUNT(*) FROM event_retractions").value() == 0);
    }
    status::SourceState claude() { return engine->sourcesState().at(0); }
};

}  // namespace

TEST_CASE("append: new lines are read once, from the checkpoint") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 5));
    f.cycle();
    CHECK(f.count() == 1);
    append(f.file, claudeLine("m2", "r2", 20, 5));
    const auto before = f.claude().bytesReadSinceStart;
    f.cycle(false, {f.file});
    CHECK(f.count() == 2);
    CHECK(f.sum("input_tokens") == 30);
    // Only the new line plus the two fingerprint windows were read.
    CHECK(f.claude().bytesReadSinceStart - before < 3 * static_cast<std::int64_t>(claudeLine("m2", "r2", 20, 5).size()) + 8192);
    CHECK(f.claude().bytesPending == 0);
}

TEST_CASE("a partial last line waits for its newline") {
    Fixture f;
    const std::string line = claudeLine("m1", "r1", 10, 5);
    append(f.file, line.substr(0, 40));
    f.cycle();
    CHECK(f.count() == 0);
    CHECK(f.claude().bytesPending == 40);
    append(f.file, line.substr(40));
    f.cycle(false, {f.file});
    CHECK(f.count() == 1);
    CHECK(f.claude().bytesPending == 0);
}

TEST_CASE("a streamed response arriving in separate cycles is revised in place") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 1));
    f.cycle();
    const auto firstId = f.maxId();
    append(f.file, claudeLine("m1", "r1", 10, 50));
    f.cycle(false, {f.file});
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 50);
    CHECK(f.maxId() > firstId);  // a revision gets a new id, so marts re-absorb it
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM event_retractions WHERE old_event_id = " +
                        std::to_string(firstId)).value() == 1);
    // A lighter chunk read later changes nothing.
    append(f.file, claudeLine("m1", "r1", 10, 2));
    const auto idAfter = f.maxId();
    f.cycle(false, {f.file});
    CHECK(f.maxId() == idAfter);
    CHECK(f.sum("output_tokens") == 50);
}

TEST_CASE("a streamed response read in one step is written once, as its heaviest chunk") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 1) + claudeLine("m1", "r1", 10, 50) +
                       claudeLine("m1", "r1", 10, 2));
    f.cycle();
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 50);
    // Nothing was written only to be revised within the step.
    CHECK(f.maxId() == 1);
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM event_retractions").value() == 0);
}

TEST_CASE("a chunk superseded within its step still lends its session to the message") {
    Fixture f;
    // One response copied into two sessions (a continued transcript): the
    // lighter copy loses within the step, but its session holds the message.
    append(f.file, claudeLine("m1", "r1", 10, 1, "2026-01-01T10:00:00.000Z", "sA") +
                       claudeLine("m1", "r1", 10, 50, "2026-01-01T10:00:00.000Z", "sB"));
    f.cycle();
    CHECK(f.count() == 1);
    // A sidechain replay of that message in session sA (no requestId) belongs to it.
    append(f.file, claudeLine("m1", "", 10, 90, "2026-01-01T10:00:01.000Z", "sA", true));
    f.cycle(false, {f.file});
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 50);
    // So does one in sB: the record right after sA's names another session,
    // so it records its own (the chunks of one session skip that repeat).
    append(f.file, claudeLine("m1", "", 10, 95, "2026-01-01T10:00:02.000Z", "sB", true));
    f.cycle(false, {f.file});
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 50);
}

TEST_CASE("a project first met without a cwd takes the path of the first record that has one") {
    Fixture f;
    std::string noCwd = claudeLine("m1", "r1", 10, 5);
    noCwd.erase(noCwd.find(R"("cwd":"/p1",)"), std::string(R"("cwd":"/p1",)").size());
    append(f.file, noCwd);
    f.cycle();
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM projects WHERE path IS NULL").value() == 1);
    append(f.file, claudeLine("m2", "r2", 10, 5));
    f.cycle(false, {f.file});
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM projects").value() == 1);
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM projects WHERE path = '/p1'").value() == 1);
}

TEST_CASE("truncate: stored events stay, new content is read from the start") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 5) + claudeLine("m2", "r2", 10, 5));
    f.cycle();
    CHECK(f.count() == 2);
    overwrite(f.file, claudeLine("m3", "r3", 7, 1));
    f.cycle(false, {f.file});
    CHECK(f.count() == 3);  // history stays (invariant 6)
    CHECK(f.sum("input_tokens") == 27);
}

TEST_CASE("replace by rename: a new file under the old name is read from byte 0, nothing doubled") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 5));
    f.cycle();
    const std::string tmp = f.projects + "/a.tmp";
    append(tmp, claudeLine("m1", "r1", 10, 5) + claudeLine("m2", "r2", 1, 1));
    REQUIRE(::rename(tmp.c_str(), f.file.c_str()) == 0);
    f.cycle(false, {f.file});
    CHECK(f.count() == 2);
    CHECK(f.sum("input_tokens") == 11);
}

TEST_CASE("rewrite in place with the same size: fingerprints catch it") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 5));
    f.cycle();
    overwrite(f.file, claudeLine("m1", "r1", 10, 6));  // same length, another count
    struct timespec times[2] = {{0, UTIME_NOW}, {2'000'000'000, 0}};
    ::utimensat(AT_FDCWD, f.file.c_str(), times, 0);  // a different mtime
    f.cycle(false, {f.file});
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 6);
}

TEST_CASE("delete: events stay, the checkpoint goes") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 5));
    f.cycle();
    REQUIRE(::unlink(f.file.c_str()) == 0);
    f.cycle();
    CHECK(f.count() == 1);
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM file_checkpoints").value() == 0);
    CHECK(f.claude().files == 0);
}

TEST_CASE("a root created after start-up is picked up by the next rescan") {
    Fixture f;
    f.cycle();
    CHECK(f.count() == 0);
    const std::string codex = f.dir.file("codex/sessions/2026/01/02");
    makeDirectories(codex, 0755);
    append(codex + "/rollout-x.jsonl",
           R"({"timestamp":"2026-01-02T00:00:00.000Z","type":"session_meta","payload":{"id":"c1","cwd":"/w"}})" "\n"
           R"({"timestamp":"2026-01-02T00:00:01.000Z","type":"turn_context","payload":{"model":"gpt-5"}})" "\n"
           R"({"timestamp":"2026-01-02T00:00:02.000Z","type":"event_msg","payload":{"type":"token_count","info":{"last_token_usage":{"input_tokens":100,"cached_input_tokens":20,"output_tokens":10,"reasoning_output_tokens":0,"total_tokens":110}}}})" "\n");
    f.cycle();
    CHECK(f.count("provider = 'codex'") == 1);
    CHECK(f.sum("cache_read_tokens") == 20);
}

TEST_CASE("while stopped: append, truncate, replace and delete are all seen at restart") {
    Fixture f;
    const std::string other = f.projects + "/b.jsonl";
    const std::string gone = f.projects + "/c.jsonl";
    append(f.file, claudeLine("m1", "r1", 1, 1));
    append(other, claudeLine("m2", "r2", 1, 1) + claudeLine("m3", "r3", 1, 1));
    append(gone, claudeLine("m4", "r4", 1, 1));
    f.cycle();
    CHECK(f.count() == 4);

    append(f.file, claudeLine("m5", "r5", 1, 1));        // appended while down
    overwrite(other, claudeLine("m6", "r6", 1, 1));      // truncated while down
    REQUIRE(::unlink(gone.c_str()) == 0);                // deleted while down
    f.restart();
    f.cycle();
    CHECK(f.count() == 6);
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM file_checkpoints").value() == 2);
}

TEST_CASE("a file whose root moves in the configured list stays one file, read on from its checkpoint") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 1));
    f.cycle();
    // A root configured before its own moves it, and its source path, on.
    const std::string added = f.dir.file("claude-added");
    makeDirectories(added + "/projects", 0755);
    std::vector<ProviderRoots> roots = f.roots();
    roots[0].roots.insert(roots[0].roots.begin(), added);
    f.engine = std::make_unique<IngestEngine>(roots, f.prices, f.clock);
    REQUIRE(f.engine->load(f.db).ok());
    f.cycle();
    CHECK(f.claude().files == 1);
    CHECK(f.claude().bytesReadSinceStart == 0);
    append(f.file, claudeLine("m2", "r2", 10, 1));
    f.cycle();
    f.checkWrittenOnce(2);
}

TEST_CASE("a cycle with nothing to read commits no step") {
    // An event for bytes already read, or a rescan finding every file as
    // checkpointed, must not count as progress (status: a step within 10 s
    // reads "syncing") nor write an empty transaction.
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 1, 1));
    REQUIRE(f.cycle().steps == 1);
    int committed = 0;
    CycleRequest req;
    req.fullRescan = true;
    req.paths = {f.file};
    auto again = f.engine->runCycle(f.db, req, [&](store::Connection&, const StepReport&) -> Status {
        ++committed;
        return {};
    }, {});
    REQUIRE(again.ok());
    CHECK(again->steps == 0);
    CHECK(committed == 0);
    CHECK(f.count() == 1);
}

TEST_CASE("a restart reads no file contents when nothing changed") {
    Fixture f;
    for (int i = 0; i < 20; ++i)
        append(f.projects + "/f" + std::to_string(i) + ".jsonl", claudeLine("m" + std::to_string(i), "r", 1, 1));
    f.cycle();
    f.restart();
    f.cycle();
    CHECK(f.claude().files == 20);
    CHECK(f.claude().bytesReadSinceStart == 0);
}

TEST_CASE("a sidechain replay read before its main response ends merged") {
    Fixture f;
    const std::string side = f.projects + "/s1/subagents/agent-1.jsonl";
    makeDirectories(f.projects + "/s1/subagents", 0755);
    append(side, claudeLine("m1", "r1", 10, 5, "2026-01-01T10:00:00.000Z", "s1", true));
    f.cycle();
    CHECK(f.count() == 1);
    CHECK(f.count("is_sidechain = 1") == 1);
    f.restart();  // the main file is written after a restart
    append(f.file, claudeLine("m1", "r1", 10, 5));
    f.cycle();
    CHECK(f.count() == 1);
    CHECK(f.count("is_sidechain = 0") == 1);
    // Reading the replay again adds nothing.
    append(side, claudeLine("m1", "r1", 10, 9, "2026-01-01T10:00:01.000Z", "s1", true));
    f.cycle();
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 5);
}

TEST_CASE("every statement an ingest step runs is planned without a full scan") {
    // Inserts, revisions, sidechain replays and their merge, checkpoints: each
    // lookup must use an index (the message lookup uses a partial one, on
    // sidechain events only) and the traced statements must cover them.
    Fixture f;
    std::set<std::string> statements;
    auto trace = [](unsigned, void* ctx, void* p, void*) -> int {
        if (const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(p)))
            static_cast<std::set<std::string>*>(ctx)->insert(sql);
        return 0;
    };
    sqlite3_trace_v2(f.db.handle(), SQLITE_TRACE_STMT, trace, &statements);
    const std::string side = f.projects + "/s1/subagents/agent-1.jsonl";
    makeDirectories(f.projects + "/s1/subagents", 0755);
    append(side, claudeLine("m1", "r1", 10, 5, "2026-01-01T10:00:00.000Z", "s1", true));
    append(side, claudeLine("m2", "r2", 10, 5, "2026-01-01T10:00:00.000Z", "s1", true));
    append(f.file, claudeLine("m3", "r3", 10, 1));
    f.cycle();
    append(f.file, claudeLine("m1", "r1", 10, 5) + claudeLine("m3", "r3", 10, 50));
    f.cycle();
    append(side, claudeLine("m1", "r1", 10, 9, "2026-01-01T10:00:01.000Z", "s1", true));
    f.cycle();
    sqlite3_trace_v2(f.db.handle(), 0, nullptr, nullptr);
    CHECK(f.count() == 3);                    // m1 merged into its main response
    CHECK(f.count("is_sidechain = 1") == 1);  // m2 has no main response
    CHECK(f.sum("output_tokens") == 60);

    int usageEventStatements = 0;
    for (const std::string& sql : statements) {
        if (sql.rfind("BEGIN", 0) == 0 || sql == "COMMIT" || sql == "ROLLBACK") continue;
        if (sql.find("usage_events") != std::string::npos) ++usageEventStatements;
        auto plan = f.db.prepare("EXPLAIN QUERY PLAN " + sql);
        REQUIRE(plan.ok());
        for (;;) {
            auto row = plan->step();
            REQUIRE(row.ok());
            if (!*row) break;
            const std::string detail = plan->columnText(3);
            CAPTURE(sql);
            const bool oneRowTable = detail == "SCAN event_counts_through";
            CHECK_MESSAGE((detail.rfind("SCAN", 0) != 0 || oneRowTable), detail);
        }
    }
    CHECK(usageEventStatements >= 6);  // by key, by message, insert, delete, update, counts
    CHECK(std::any_of(statements.begin(), statements.end(), [](const std::string& sql) {
        return sql.find("is_sidechain = 1") != std::string::npos;
    }));
}

TEST_CASE("bad input is skipped, counted, and loses nothing around it") {
    Fixture f;
    std::string bytes = claudeLine("m1", "r1", 1, 1);
    bytes += "{not json\n";
    bytes += "\xff\xfe\xfd invalid utf-8 \xc3\x28\n";
    bytes += claudeLine("m2", "r2", 1, 1);
    append(f.file, bytes);
    append(f.projects + "/binary.jsonl", std::string("\x00\x01\x02\x03\n\x00\xff\n", 8));
    f.cycle();
    CHECK(f.count() == 2);
    CHECK(f.claude().linesSkipped >= 3);
}

TEST_CASE("a 64 MiB line is skipped without being held, and the file goes on") {
    Fixture f;
    std::string huge = R"({"type":"user","pad":")" + std::string(64u << 20, 'x') + "\"}\n";
    append(f.file, claudeLine("m1", "r1", 1, 1) + huge + claudeLine("m2", "r2", 1, 1));
    f.cycle();
    CHECK(f.count() == 2);
    CHECK(f.claude().linesSkipped == 1);
    CHECK(f.claude().bytesPending == 0);
}

TEST_CASE("a first ingest is written in bounded steps") {
    Fixture f;
    std::string bytes;
    int n = 0;
    while (bytes.size() < 3 * kStepBytes) bytes += claudeLine("m" + std::to_string(n), "r", 1, 1), ++n;
    append(f.file, bytes);
    auto report = f.cycle();
    CHECK(report.steps >= 3);
    CHECK(f.count() == n);
}

// Claude lines m<first>.. for at least `bytes` bytes; returns how many.
int appendLines(const std::string& path, std::uint64_t bytes, int first = 0) {
    std::string text;
    int n = first;
    for (; text.size() < bytes; ++n) {
        std::string id = "m";
        id += std::to_string(n);  // not "m" + ...: GCC 12 warns falsely there (-Wrestrict)
        text += claudeLine(id, "r", 1, 1);
    }
    append(path, text);
    return n - first;
}

TEST_CASE("a streamed response cut by a step's budget is read whole by the next step") {
    Fixture f;
    // Filler up to just below the budget, then a response whose first chunk
    // ends within the budget and whose heavier second chunk crosses it.
    const std::string first = claudeLine("streamed", "r", 10, 1);
    const std::string second = claudeLine("streamed", "r", 10, 50);
    std::string filler;
    int n = 0;
    while (filler.size() + first.size() + second.size() / 2 < kStepBytes)
        filler += claudeLine("m" + std::to_string(n++), "r", 1, 1);
    REQUIRE(filler.size() + first.size() <= kStepBytes);
    REQUIRE(filler.size() + first.size() + second.size() > kStepBytes);
    append(f.file, filler + first + second + claudeLine("after", "r", 1, 1));
    const auto report = f.cycle();
    CHECK(report.steps == 2);
    CHECK(f.count("event_key LIKE '%streamed%' AND output_tokens = 50") == 1);
    // Written once, as its heaviest chunk: never revised across the steps.
    f.checkWrittenOnce(n + 2);
}

TEST_CASE("a response whose next chunk is still being written is read at once, as far as it goes") {
    // Only a step's budget stops a read before a response: a file that ends
    // in a partial line is being written, and what is complete counts now.
    Fixture f;
    const std::string next = claudeLine("m1", "r1", 10, 50);
    append(f.file, claudeLine("m0", "r0", 1, 1) + claudeLine("m1", "r1", 10, 1) +
                       next.substr(0, next.size() / 2));
    const auto report = f.cycle();
    CHECK(report.steps == 1);
    CHECK(f.count() == 2);
    CHECK(f.sum("output_tokens") == 2);
}

TEST_CASE("a response that fills a step alone is read as it is, and the file goes on") {
    Fixture f;
    // Two chunks of one response, each over half the budget: the first step
    // holds only the first, so it cannot stop before the response.
    auto padded = [](int out) {
        std::string line = claudeLine("big", "r", 10, out);
        line.insert(1, R"("pad":")" + std::string(kStepBytes * 3 / 5, 'x') + R"(",)");
        return line;
    };
    append(f.file, padded(1) + padded(50));
    const auto report = f.cycle();
    CHECK(report.steps == 2);
    CHECK(f.count() == 1);
    CHECK(f.sum("output_tokens") == 50);
    CHECK(f.claude().bytesPending == 0);
}

// A Codex rollout's first line, then its model.
std::string codexHead(const std::string& session) {
    return R"({"timestamp":"2026-01-02T00:00:00.000Z","type":"session_meta","payload":{"id":")" +
           session + R"(","cwd":"/w"}})" "\n"
           R"({"timestamp":"2026-01-02T00:00:01.000Z","type":"turn_context","payload":{"model":"gpt-5"}})" "\n";
}

// A token_count event: its input count makes its identity.
std::string codexTokens(int input) {
    const std::string in = std::to_string(input);
    return R"({"timestamp":"2026-01-02T00:00:02.000Z","type":"event_msg","payload":{"type":"token_count","info":{"last_token_usage":{"input_tokens":)" +
           in + R"(,"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0,"total_tokens":)" +
           std::to_string(input + 1) + "}}}}\n";
}

TEST_CASE("files are read in source-path order: a copy met after the record that wins is not written") {
    // A forked Codex session repeats its parent's events in its own rollout.
    // The parent, under sessions/, wins by its smaller source path
    // ("0/2026/...", against "0/rollout-...") though archived_sessions/
    // comes first by absolute path. The fork spans two steps, so in
    // absolute-path order its copy would be written a step before the
    // parent's record revised it.
    Fixture f;
    const std::string sessions = f.dir.file("codex/sessions/2026/01/02");
    const std::string archived = f.dir.file("codex/archived_sessions");
    makeDirectories(sessions, 0755);
    makeDirectories(archived, 0755);
    append(sessions + "/rollout-parent.jsonl", codexHead("parent") + codexTokens(7));
    std::string fork = codexHead("fork") + codexTokens(7);
    int own = 0;
    while (fork.size() < kStepBytes + kStepBytes / 2) fork += codexTokens(1000 + own++);
    append(archived + "/rollout-fork.jsonl", fork);
    const auto report = f.cycle();
    CHECK(report.steps == 2);
    CHECK(f.count("input_tokens = 7 AND session_id = 'parent'") == 1);
    // Written once, where it wins: never revised.
    f.checkWrittenOnce(own + 1);
}

TEST_CASE("every step and every re-pricing batch folds its events into the counts before it commits") {
    // Invariant 7: status reads event_counts plus the rows above its
    // watermark; after each writer commit there must be none left to add.
    Fixture f;
    const int n = appendLines(f.file, 2 * kStepBytes + kStepBytes / 2);
    const auto tail = [&] {
        return f.count("id > (SELECT last_id FROM event_counts_through)");
    };
    int steps = 0;
    CycleRequest req;
    req.fullRescan = true;
    auto cycle = f.engine->runCycle(f.db, req, {}, [&](const StepReport&) {
        ++steps;
        CHECK(tail() == 0);
    });
    REQUIRE(cycle.ok());
    CHECK(steps == 3);
    CHECK(f.db.queryInt("SELECT n FROM event_counts WHERE dimension = 'total'").value() == n);
    // Re-pricing revises events under new ids (a cheaper price table than
    // the embedded one would do; here a zero cost does).
    REQUIRE(f.db.exec("UPDATE usage_events SET cost_usd = 0"));
    auto repriced = f.engine->repriceStep(f.db, 0, f.maxId(), 50);
    REQUIRE(repriced.ok());
    CHECK(repriced->revised > 0);
    CHECK(tail() == 0);
    CHECK(f.db.queryInt("SELECT n FROM event_counts WHERE dimension = 'total'").value() == n);
}

TEST_CASE("a re-pricing during a first ingest builds the key index first, and the ingest doubles nothing") {
    // Re-pricing copies events under new ids, which the in-memory keys
    // would not know: a later revision of such an event would miss it.
    Fixture f;
    f.engine->setDeferIndexesBytesForTest(kStepBytes);
    const int n = appendLines(f.file, kStepBytes + kStepBytes / 2);  // m0, m1, ...: two steps
    CycleRequest req;
    req.fullRescan = true;
    auto first = f.engine->runCycle(f.db, req, {}, {}, 1);
    REQUIRE(first.ok());
    REQUIRE(first->morePending);
    REQUIRE(f.engine->deferredKeysForTest().has_value());
    REQUIRE(f.db.exec("UPDATE usage_events SET cost_usd = 0"));
    auto repriced = f.engine->repriceStep(f.db, 0, f.maxId(), 1000000);
    REQUIRE(repriced.ok());
    CHECK(repriced->revised == f.count());
    CHECK_FALSE(f.engine->deferredKeysForTest().has_value());
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM sqlite_master WHERE name = 'idx_events_key'").value() == 1);
    const std::string b = f.projects + "/b.jsonl";
    append(b, claudeLine("m0", "r", 1, 7));  // m0 again, more output: a revision
    CycleRequest rest;
    rest.paths = {b};
    REQUIRE(f.engine->runCycle(f.db, rest, {}, {}).ok());
    CHECK(f.count() == n);
    CHECK(f.db.queryInt("SELECT output_tokens FROM usage_events WHERE message_id = 'm0'").value() == 7);
}

TEST_CASE("a cycle stopped at maxSteps commits only its steps; the next cycle reads on") {
    // The step after the last one allowed is never read ahead, so nothing
    // read past maxSteps is lost or counted.
    Fixture f;
    const int n = appendLines(f.file, 3 * kStepBytes);
    CycleRequest req;
    req.fullRescan = true;
    auto first = f.engine->runCycle(f.db, req, {}, {}, 2);
    REQUIRE(first.ok());
    CHECK(first->steps == 2);
    CHECK(first->morePending);
    CHECK(first->bytesReadBySteps == static_cast<std::int64_t>(2 * kStepBytes));
    CHECK(f.claude().bytesPending > 0);
    CHECK(f.count() < n);
    auto rest = f.engine->runCycle(f.db, CycleRequest{}, {}, {});
    REQUIRE(rest.ok());
    CHECK_FALSE(rest->morePending);
    CHECK(f.count() == n);
    CHECK(f.sum("output_tokens") == n);
    CHECK(f.claude().bytesPending == 0);
}

TEST_CASE("the sources totals a step keeps equal a count over the store's checkpoints") {
    // A cycle's stat counts every file; a step then moves the totals only by
    // the files it read. Checked against the checkpoints and the files' sizes
    // midway (bytes pending) and at the end, and against a restarted engine.
    Fixture f;
    const std::string bad = f.projects + "/bad.jsonl";
    appendLines(f.file, kStepBytes + kStepBytes / 2);
    append(bad, "not json\n" + claudeLine("b1", "rb", 1, 1));
    auto onDisk = [&] {
        struct stat a {}, b {};
        REQUIRE(::stat(f.file.c_str(), &a) == 0);
        REQUIRE(::stat(bad.c_str(), &b) == 0);
        return static_cast<std::int64_t>(a.st_size + b.st_size);
    };
    auto checkAgainstStore = [&] {
        const auto kept = f.claude();
        CHECK(kept.files == 2);
        CHECK(kept.bytesIngested == f.db.queryInt("SELECT COALESCE(SUM(offset), 0) FROM file_checkpoints").value());
        CHECK(kept.bytesPending == onDisk() - kept.bytesIngested);
        CHECK(kept.linesSkipped == f.db.queryInt("SELECT COALESCE(SUM(lines_skipped), 0) FROM file_checkpoints").value());
        return kept;
    };
    CycleRequest req;
    req.fullRescan = true;
    REQUIRE(f.engine->runCycle(f.db, req, {}, {}, 1).ok());
    CHECK(checkAgainstStore().bytesPending > 0);
    f.cycle(false);
    const auto kept = checkAgainstStore();
    CHECK(kept.bytesPending == 0);
    CHECK(kept.linesSkipped == 1);
    f.restart();
    f.cycle();
    const auto recounted = f.claude();
    CHECK(recounted.files == kept.files);
    CHECK(recounted.bytesIngested == kept.bytesIngested);
    CHECK(recounted.bytesPending == kept.bytesPending);
    CHECK(recounted.linesSkipped == kept.linesSkipped);
}

TEST_CASE("a first ingest into an empty store builds the read indexes once its catch-up is done") {
    Fixture f;
    auto readIndexes = [&] {
        return f.db.queryInt("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                             "('idx_events_day', 'idx_events_project', 'idx_events_provider', "
                             "'idx_events_session', 'idx_events_model')").value();
    };
    REQUIRE(readIndexes() == 5);
    f.engine->setDeferIndexesBytesForTest(kStepBytes);
    const int n = appendLines(f.file, kStepBytes + kStepBytes / 2);  // two steps
    std::vector<std::int64_t> duringSteps;
    auto inStep = [&](store::Connection&, const StepReport&) -> Status {
        duringSteps.push_back(readIndexes());
        return {};
    };
    CycleRequest req;
    req.fullRescan = true;
    auto first = f.engine->runCycle(f.db, req, inStep, {}, 1);  // stopped with bytes left
    REQUIRE(first.ok());
    CHECK(first->morePending);
    CHECK(readIndexes() == 0);
    auto rest = f.engine->runCycle(f.db, CycleRequest{}, inStep, {});
    REQUIRE(rest.ok());
    CHECK(duringSteps == std::vector<std::int64_t>(duringSteps.size(), 0));
    CHECK(duringSteps.size() >= 2);
    CHECK(readIndexes() == 5);
    CHECK(f.count() == n);

    SUBCASE("a store that holds events keeps them through a large catch-up") {
        duringSteps.clear();
        appendLines(f.projects + "/b.jsonl", kStepBytes + kStepBytes / 2, n);
        REQUIRE(f.engine->runCycle(f.db, req, inStep, {}).ok());
        CHECK(duringSteps == std::vector<std::int64_t>(duringSteps.size(), 5));
        CHECK(duringSteps.size() >= 2);
    }
    SUBCASE("a daemon stopped before the end finds them built when it opens the store") {
        const int m = appendLines(f.projects + "/b.jsonl", 1000, n);
        REQUIRE(store::dropReadIndexes(f.db).ok());
        f.db = store::openWriter(f.dir.file("etl.db")).value();
        CHECK(readIndexes() == 5);
        f.restart();
        f.cycle();
        CHECK(f.count() == n + m);
    }
}

TEST_CASE("the in-memory key index finds every id added under a key, across its growth") {
    EventKeyIndex keys;
    const int n = 5000;  // several doublings past the first table
    for (int i = 1; i <= n; ++i) keys.add("key" + std::to_string(i), i);
    keys.add("key7", n + 1);  // a revision: the same key under a new id
    CHECK(keys.size() == static_cast<std::size_t>(n + 1));
    for (int i = 1; i <= n; ++i) {
        std::vector<std::int64_t> ids;
        keys.findIf("key" + std::to_string(i), [&](std::int64_t id) {
            ids.push_back(id);
            return false;
        });
        std::sort(ids.begin(), ids.end());  // in no promised order
        INFO("key" << i);
        if (i == 7) CHECK(ids == std::vector<std::int64_t>{7, n + 1});
        else CHECK(ids == std::vector<std::int64_t>{i});
    }
    CHECK(keys.findIf("key9", [](std::int64_t id) { return id == 9; }));
    CHECK_FALSE(keys.findIf("key9", [](std::int64_t id) { return id == 10; }));
    CHECK_FALSE(keys.findIf("absent", [](std::int64_t) { return true; }));
    CHECK(keys.memoryBytes() <= 16 * 2 * 4 * static_cast<std::size_t>(n + 1) / 3);
}

TEST_CASE("a first ingest finds the keys it wrote in memory while the key index is deferred") {
    Fixture f;
    f.engine->setDeferIndexesBytesForTest(kStepBytes);
    auto keyIndex = [&] {
        return f.db.queryInt("SELECT COUNT(*) FROM sqlite_master WHERE name = 'idx_events_key'").value();
    };
    auto readIndexes = [&] {
        return f.db.queryInt("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'idx_events_%' "
                             "AND name NOT IN ('idx_events_key', 'idx_events_sidechain_message')").value();
    };
    struct During {
        std::int64_t keyIndex, readIndexes;
        std::optional<std::size_t> keysInMemory;
    };
    std::vector<During> during;
    int failAtStep = 0;  // 1-based; 0: none
    auto inStep = [&](store::Connection&, const StepReport&) -> Status {
        during.push_back({keyIndex(), readIndexes(), f.engine->deferredKeysForTest()});
        if (static_cast<int>(during.size()) == failAtStep) return Error{"store_full", "disk full"};
        return {};
    };
    // Three steps, in file order: a.jsonl's first 4 MiB (m0, m1, ...); the
    // rest of it and b.jsonl's start, which revises m0 (more output wins),
    // copies m1 to lose, and replays m2 as a sidechain of another session
    // (owned through its key); then c.jsonl, revising m0 again (its row has
    // changed id once already). Each revision meets its key in an earlier
    // step's commit.
    const int n = appendLines(f.file, kStepBytes + kStepBytes / 2);
    const std::string b = f.projects + "/b.jsonl", c = f.projects + "/c.jsonl";
    append(b, claudeLine("m0", "r", 1, 7) + claudeLine("m1", "r", 1, 0) +
                  claudeLine("m2", "r", 1, 90, "2026-01-01T10:00:00.000Z", "s9", true));
    const int padding = appendLines(b, kStepBytes, n);
    append(c, claudeLine("m0", "r", 1, 9));

    auto ingest = [&] {
        CycleRequest req;
        req.fullRescan = true;
        auto cycle = f.engine->runCycle(f.db, req, inStep, {});
        if (failAtStep > 0) {
            REQUIRE_FALSE(cycle.ok());
            cycle = f.engine->runCycle(f.db, CycleRequest{}, inStep, {});
        }
        REQUIRE(cycle.ok());
        CHECK_FALSE(cycle->morePending);
    };

    SUBCASE("every step looks keys up in memory") {
        ingest();
        CHECK(during.size() == 3);
        for (const During& d : during) {
            CHECK(d.keyIndex == 0);
            CHECK(d.readIndexes == 0);
            CHECK(d.keysInMemory.has_value());
        }
    }
    SUBCASE("a step that rolls back leaves no key behind it that misleads the next") {
        failAtStep = 2;
        ingest();
        CHECK(during.size() == 4);
    }
    SUBCASE("past the memory cap, the key index is built at once and used") {
        f.engine->setMaxDeferredKeysForTest(100);
        ingest();
        REQUIRE(during.size() == 3);
        CHECK(during[0].keysInMemory.has_value());
        CHECK(during[0].keyIndex == 0);
        for (size_t i = 1; i < during.size(); ++i) {
            CHECK(during[i].keyIndex == 1);
            CHECK(during[i].readIndexes == 0);
            CHECK_FALSE(during[i].keysInMemory.has_value());
        }
    }
    CHECK(keyIndex() == 1);
    CHECK(readIndexes() == 5);
    CHECK_FALSE(f.engine->deferredKeysForTest().has_value());
    CHECK(f.count() == n + padding);
    CHECK(f.count("session_id = 's9'") == 0);
    CHECK(f.sum("output_tokens") == n + padding - 1 + 9);
    CHECK(f.db.queryInt("SELECT output_tokens FROM usage_events WHERE message_id = 'm0'").value() == 9);
}

TEST_CASE("a step read ahead by a cycle stopped at maxSteps is dropped when the next cycle stats a change") {
    // The cycle stopped at maxSteps reads its next step ahead, planned up to
    // the size the file had then. A next cycle that stats the file again (it
    // grew) must read from its own plan, or the growth would be marked read.
    Fixture f;
    const int n = appendLines(f.file, kStepBytes + kStepBytes / 2);  // the step ahead reaches the end
    CycleRequest req;
    req.fullRescan = true;
    REQUIRE(f.engine->runCycle(f.db, req, {}, {}, 1).ok());
    const int grown = appendLines(f.file, 100, n);
    CycleRequest changed;
    changed.paths = {f.file};
    auto rest = f.engine->runCycle(f.db, changed, {}, {});
    REQUIRE(rest.ok());
    CHECK_FALSE(rest->morePending);
    CHECK(f.count() == n + grown);
    CHECK(f.claude().bytesPending == 0);
}

TEST_CASE("a file left mid-way by a step's budget is read on after a rescan and after a restart") {
    // The file is unchanged since its stat: only its checkpoint's offset
    // says bytes are left. A rescan (a `sync` arriving during a first
    // ingest) and a restart (a daemon stopped during one) used to take it
    // for read to its end, losing the rest of the file.
    for (const bool restart : {false, true}) {
        CAPTURE(restart);
        Fixture f;
        const int n = appendLines(f.file, kStepBytes + kStepBytes / 2);  // two steps
        CycleRequest req;
        req.fullRescan = true;
        auto first = f.engine->runCycle(f.db, req, {}, {}, 1);
        REQUIRE(first.ok());
        REQUIRE(first->morePending);
        const std::int64_t afterOne = f.count();
        REQUIRE(afterOne < n);
        if (restart) f.restart();
        f.cycle();
        CHECK(f.count() == n);
        CHECK(f.sum("output_tokens") == n);
        CHECK(f.claude().bytesPending == 0);
        // Read to its end, the file is left alone by the next rescan.
        const auto before = f.claude().bytesReadSinceStart;
        CHECK(f.cycle().steps == 0);
        CHECK(f.claude().bytesReadSinceStart == before);
    }
}

TEST_CASE("a plain continuation takes up the steps read ahead, counting their bytes once") {
    // Cycles of one step each: every cycle but the first finds its steps read
    // ahead (on the helper thread, while the caller did something else).
    Fixture f;
    const int n = appendLines(f.file, 2 * kStepBytes + kStepBytes / 2);  // three steps
    std::atomic<int> reads{0}, readsOnCaller{0};
    const auto caller = std::this_thread::get_id();
    f.engine->setBeforeReadForTest([&](const std::string&) {
        ++reads;
        if (std::this_thread::get_id() == caller) ++readsOnCaller;
    });
    CycleRequest req;
    req.fullRescan = true;
    auto first = f.engine->runCycle(f.db, req, {}, {}, 1);
    REQUIRE(first.ok());
    CHECK(first->bytesReadBySteps == static_cast<std::int64_t>(kStepBytes));
    std::int64_t steps = first->steps;
    for (int guard = 0; guard < 10; ++guard) {
        auto next = f.engine->runCycle(f.db, CycleRequest{}, {}, {}, 1);
        REQUIRE(next.ok());
        steps += next->steps;
        if (!next->morePending) break;
    }
    f.engine->setBeforeReadForTest({});
    CHECK(steps >= 3);
    CHECK(f.count() == n);
    CHECK(f.sum("output_tokens") == n);
    CHECK(f.claude().bytesPending == 0);
    CHECK(reads.load() == steps);  // one read of the file per step: none read twice
    CHECK(readsOnCaller.load() == 0);  // every read on the helper thread
}

namespace {

// Holds the helper's read of a step's file until `release` runs (or 30 s
// pass, which the test then reports): the writer finds that step not read.
struct HeldRead {
    std::promise<void> promise;
    std::shared_future<void> released = promise.get_future().share();
    std::atomic<bool> releasedInTime{false};
    std::atomic<int> reads{0};
    void install(IngestEngine& engine, int heldRead) {
        engine.setBeforeReadForTest([this, heldRead](const std::string&) {
            if (++reads == heldRead)
                releasedInTime = released.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
        });
    }
    void release() { promise.set_value(); }
};

}  // namespace

TEST_CASE("while a step is still being read, the writer runs the cycle's other work instead of waiting") {
    Fixture f;
    const int n = appendLines(f.file, 2 * kStepBytes + kStepBytes / 2);  // three steps
    HeldRead held;
    held.install(*f.engine, 2);  // the second step's read waits for the work below
    int calls = 0;
    std::int64_t eventsSeen = -1;
    bool outsideTransactions = true;
    CycleRequest req;
    req.fullRescan = true;
    auto cycle = f.engine->runCycle(f.db, req, {}, {}, 0, [&](store::Connection& db) -> Result<bool> {
        outsideTransactions = outsideTransactions && sqlite3_get_autocommit(db.handle()) != 0;
        if (f.count() == 0) return false;  // nothing committed yet: nothing to do
        if (++calls == 1) {
            eventsSeen = f.count();  // what the first step committed
            held.release();
        }
        return calls == 1;  // some work done, and more: asked again while the read is pending
    });
    f.engine->setBeforeReadForTest({});
    REQUIRE(cycle.ok());
    CHECK(held.releasedInTime.load());  // released by the work, not by the timeout
    CHECK(calls >= 1);
    CHECK(eventsSeen > 0);
    CHECK(eventsSeen < n);
    CHECK(outsideTransactions);  // between steps: no transaction open
    CHECK(f.count() == n);
    CHECK(cycle->steps >= 3);
}

TEST_CASE("while a step is still being read, the writer reads small files of it itself") {
    Fixture f;
    constexpr int kFiles = 12;
    int n = 0;
    for (int i = 0; i < kFiles; ++i) {
        std::string lines;
        for (int j = 0; j < 50; ++j, ++n)
            lines += claudeLine("m" + std::to_string(n), "r" + std::to_string(n), 1, 1,
                                "2026-01-01T10:00:00.000Z", "s" + std::to_string(i));
        overwrite(f.projects + "/f" + std::to_string(100 + i) + ".jsonl", lines);
    }
    // The helper's first read, if it gets to one, waits until the writer has
    // read a file of the same step: so the writer finds the step unfinished,
    // and helps (it may also take every file before the helper takes one).
    const auto caller = std::this_thread::get_id();
    std::mutex mutex;
    std::condition_variable changed;
    int readsOnCaller = 0, reads = 0;
    bool helperHeld = false, releasedInTime = false;
    f.engine->setBeforeReadForTest([&](const std::string&) {
        std::unique_lock lock(mutex);
        ++reads;
        if (std::this_thread::get_id() == caller) {
            ++readsOnCaller;
            changed.notify_all();
        } else if (!helperHeld) {
            helperHeld = true;
            releasedInTime = changed.wait_for(lock, std::chrono::seconds(30), [&] { return readsOnCaller > 0; });
        }
    });
    CycleRequest req;
    req.fullRescan = true;
    auto cycle = f.engine->runCycle(f.db, req, {}, {});
    f.engine->setBeforeReadForTest({});
    REQUIRE(cycle.ok());
    CHECK((!helperHeld || releasedInTime));  // released by the writer's read, not the timeout
    CHECK(readsOnCaller > 0);
    CHECK(reads == kFiles);  // each file read once, by one of the two
    CHECK(cycle->steps == 1);
    CHECK(f.count() == n);
    CHECK(f.count("session_id LIKE 's%'") == n);
    CHECK(f.claude().bytesPending == 0);
    f.restart();  // and the checkpoints say every file is read to its end
    CHECK(f.cycle().steps == 0);
    CHECK(f.count() == n);
}

TEST_CASE("an error of the work done while a read is pending fails the cycle, committed steps kept") {
    Fixture f;
    const int n = appendLines(f.file, 2 * kStepBytes + kStepBytes / 2);
    HeldRead held;
    held.install(*f.engine, 2);
    std::int64_t committedBefore = -1;
    CycleRequest req;
    req.fullRescan = true;
    auto failing = f.engine->runCycle(f.db, req, {}, {}, 0, [&](store::Connection&) -> Result<bool> {
        if (f.count() == 0) return false;
        committedBefore = f.count();
        held.release();
        return Error{"store_full", "disk full"};
    });
    f.engine->setBeforeReadForTest({});
    REQUIRE_FALSE(failing.ok());
    CHECK(failing.error().code == "store_full");
    CHECK(held.releasedInTime.load());
    CHECK(committedBefore > 0);
    CHECK(f.count() == committedBefore);  // the failure wrote nothing more
    f.cycle();  // the daemon's retry: a full rescan
    CHECK(f.count() == n);
    CHECK(f.sum("output_tokens") == n);
}

TEST_CASE("dropping the read-ahead before a price change prices every later step with the new table") {
    // What SIGHUP's reload does: the helper a cycle left reading ahead parses
    // (and prices) with the table the engine refers to, so it is stopped and
    // its steps dropped before that table is replaced.
    Fixture f;
    const int n = appendLines(f.file, 3 * kStepBytes);
    std::atomic<int> reads{0};
    f.engine->setBeforeReadForTest([&](const std::string&) { ++reads; });
    CycleRequest req;
    req.fullRescan = true;
    auto first = f.engine->runCycle(f.db, req, {}, {}, 1);
    REQUIRE(first.ok());
    REQUIRE(first->morePending);
    const std::int64_t priced = f.count();  // by the embedded table: far below $2 a line
    while (reads.load() < 2) std::this_thread::yield();  // the helper is reading the next step
    f.engine->dropReadAhead();
    f.prices = sources::PriceTable::fromJson(
                   R"({"claude-sonnet-4-20250514": {"input_cost_per_token": 1.0, "output_cost_per_token": 1.0,)"
                   R"( "litellm_provider": "anthropic", "mode": "chat"}})")
                   .value();
    f.cycle(false);
    CHECK(f.count() == n);
    // 1 input and 1 output token per line at $1 each, for every line the
    // first step did not write.
    CHECK(f.count("cost_usd = 2.0") == n - priced);
    f.engine->setBeforeReadForTest({});
}

TEST_CASE("a step failing while the next ones are read ahead keeps the committed steps only") {
    // Six steps: when the second fails, the helper has read up to
    // kReadAheadSteps past it; those are dropped, and read again.
    Fixture f;
    const int n = appendLines(f.file, (kReadAheadSteps + 2) * kStepBytes);
    CycleRequest req;
    req.fullRescan = true;
    int steps = 0;
    auto failing = f.engine->runCycle(f.db, req,
        [&](store::Connection&, const StepReport&) -> Status {
            if (++steps == 2) return Error{"store_full", "disk full"};
            return {};
        }, {});
    CHECK_FALSE(failing.ok());
    const std::int64_t afterOne = f.count();
    CHECK(afterOne > 0);
    CHECK(afterOne < n);
    const auto offset = f.db.queryInt("SELECT offset FROM file_checkpoints").value();
    CHECK(offset > 0);
    CHECK(offset <= static_cast<std::int64_t>(kStepBytes));
    f.cycle(false);
    CHECK(f.count() == n);
    CHECK(f.sum("output_tokens") == n);
}

TEST_CASE("a file that opens but cannot be read is skipped until it changes, not read at every step") {
    // Replaced by a directory between the stat and the read: open() works,
    // pread() fails (EISDIR) every time. The cycle must end (it used to plan
    // the file again at every step), say why, and read the rest.
    Fixture f;
    const std::string other = f.projects + "/b.jsonl";
    append(f.file, claudeLine("a1", "ra", 1, 1));
    append(other, claudeLine("b1", "rb", 1, 1));
    f.engine->setBeforeReadForTest([&](const std::string& path) {
        if (path == other && ::unlink(other.c_str()) == 0) ::mkdir(other.c_str(), 0755);
    });
    auto report = f.cycle();
    CHECK(report.steps == 1);
    CHECK(f.count() == 1);
    REQUIRE(f.claude().lastError.has_value());
    CHECK(f.claude().lastError->find("cannot read " + other) != std::string::npos);
    f.engine->setBeforeReadForTest({});
    REQUIRE(::rmdir(other.c_str()) == 0);
    append(other, claudeLine("b1", "rb", 1, 1));  // a file again: read from the start
    f.cycle();
    CHECK(f.count() == 2);
}

TEST_CASE("a file that vanishes before a read-ahead step opens it is skipped") {
    // The first step reads 4 MiB of a.jsonl; the second, read while the
    // first is written, finds b.jsonl gone.
    Fixture f;
    const std::string other = f.projects + "/b.jsonl";
    const int n = appendLines(f.file, kStepBytes + kStepBytes / 2);
    append(other, claudeLine("b1", "rb", 1, 1));
    f.engine->setBeforeReadForTest([&](const std::string& path) {
        if (path == other) ::unlink(other.c_str());
    });
    auto report = f.cycle();
    CHECK(report.steps == 2);
    CHECK(f.count() == n);
    REQUIRE(f.claude().lastError.has_value());
    CHECK(f.claude().lastError->find("b.jsonl") != std::string::npos);
    f.engine->setBeforeReadForTest({});
    append(other, claudeLine("b2", "rb2", 1, 1));  // it comes back: read from the start
    f.cycle();
    CHECK(f.count() == n + 1);
}

TEST_CASE("a gemini .json rewrite revises only what changed; a mid-write file is left as read") {
    Fixture f;
    const std::string dir = f.dir.file("gemini/abc/chats");
    makeDirectories(dir, 0755);
    auto session = [](int out2) {
        return R"({"sessionId":"g1","startTime":"2026-01-03T00:00:00.000Z","messages":[)"
               R"({"id":"a","type":"gemini","timestamp":"2026-01-03T00:00:01.000Z","model":"gemini-2.5-pro","tokens":{"input":10,"output":1,"cached":0,"thoughts":0,"tool":0,"total":11}},)"
               R"({"id":"b","type":"gemini","timestamp":"2026-01-03T00:00:02.000Z","model":"gemini-2.5-pro","tokens":{"input":10,"output":)" +
               std::to_string(out2) + R"(,"cached":0,"thoughts":0,"tool":0,"total":99}}]})";
    };
    overwrite(dir + "/session-1.json", session(2));
    f.cycle();
    CHECK(f.count("provider = 'gemini'") == 2);
    const auto idA = f.db.queryInt("SELECT id FROM usage_events WHERE provider = 'gemini' ORDER BY ts LIMIT 1").value();
    overwrite(dir + "/session-1.json", session(30));
    f.cycle();
    CHECK(f.count("provider = 'gemini'") == 2);
    CHECK(f.db.queryInt("SELECT id FROM usage_events WHERE provider = 'gemini' ORDER BY ts LIMIT 1").value() == idA);
    CHECK(f.db.queryInt("SELECT SUM(output_tokens) FROM usage_events WHERE provider = 'gemini'").value() == 31);
    overwrite(dir + "/session-1.json", session(30).substr(0, 50));  // caught mid-write
    f.cycle();
    CHECK(f.db.queryInt("SELECT SUM(output_tokens) FROM usage_events WHERE provider = 'gemini'").value() == 31);
}

TEST_CASE("a failed step moves no checkpoint, and the bytes are read again") {
    Fixture f;
    append(f.file, claudeLine("m1", "r1", 10, 5));
    CycleRequest req;
    req.fullRescan = true;
    auto failing = f.engine->runCycle(f.db, req,
        [](store::Connection&, const StepReport&) -> Status { return Error{"store_full", "disk full"}; }, {});
    CHECK_FALSE(failing.ok());
    CHECK(f.count() == 0);
    CHECK(f.db.queryInt("SELECT COUNT(*) FROM file_checkpoints").value() == 0);
    f.cycle();
    CHECK(f.count() == 1);
}

TEST_CASE("a file that vanishes between its stat and its read is skipped, and the rest goes on") {
    Fixture f;
    const std::string other = f.projects + "/b.jsonl";
    append(f.file, claudeLine("m1", "r1", 1, 1));
    append(other, claudeLine("m2", "r2", 1, 1));
    f.engine->setBeforeReadForTest([&](const std::string& path) {
        if (path == f.file) ::unlink(f.file.c_str());
    });
    f.cycle();
    CHECK(f.count() == 1);  // b.jsonl's event
    CHECK(f.claude().lastError.has_value());
    CHECK(f.claude().lastError->find("a.jsonl") != std::string::npos);
    f.engine->setBeforeReadForTest({});
    append(f.file, claudeLine("m3", "r3", 1, 1));  // it comes back: read from the start
    f.cycle();
    CHECK(f.count() == 2);
}
