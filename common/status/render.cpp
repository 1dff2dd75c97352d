// Renderers of the status document: sorted JSON, compact JSON, the text
// summary and the `--check` line (shared/spec/status.md, "Rendering" and
// "Exit codes").
//
// They read a document, never a StatusInput: etlctl renders what the daemon
// sent, which may come from a newer daemon with more keys or, in principle,
// lack some. So every read is tolerant: a missing or mistyped key reads as
// absent (0, null, empty) and never crashes the renderer.
//
// Sorted JSON. Keys are ordered by their bytes (for UTF-8 the same order as by
// code point, which is what the original CLI's sort_keys gave) at every depth;
// each member or element sits on its own line, indented 2 spaces per level;
// empty objects and arrays are `{}` and `[]`; the text ends with a newline.
// Scalars (and keys) are written by RapidJSON's own writer, so escaping and
// number formatting are those of the socket.
//
// Text. The first block is the original's layout line for line:
//
//   ETL pipeline — <health> (last refresh <N>s ago | no refresh observed)
//   <blank>
//     Events:        <total> total (<max_id> max id)
//                    by provider: k=v ...        (left out when empty)
//                    by cost source: k=v ...     (left out when empty)
//   <blank>
//     Marts:
//                    <name>=<rows> rows<pad to 24>  (watermark <wm>, fresh|<n> behind)
//   <blank>
//     Watcher:       running|stopped|disabled (...)|state unknown (...)
//                    last cycle: <n> events processed   (left out when null)
//   [<blank>, "  Lag (events behind marts): <n>"]       (only when lag > 0)
//
// Labels are two spaces and the label padded to kLabelColumns (17) columns;
// continuation lines are indented by the same 17 spaces. Every number that
// counts something (events, rows, bytes, seconds) has thousands separators;
// identifiers (pids, job ids, schema version) do not. A mart is `fresh` when
// its watermark has reached events.max_id, otherwise `<max_id - wm> behind`.
// The watcher line says `disabled` whenever `enabled` is false, even from the
// store, since that is the setting a restarted daemon would honour; otherwise
// "unknown" (the store answered), true or false.
//
// Our extras follow in the same style, each block after a blank line and
// only when it has something to say (Source always does): Source (who
// answered, with the daemon's pid, version and uptime or the store's as_of,
// then the store path and schema), Sources (one line per provider, plus a
// line for its last error), Fault, Backfill (the running job), Last backfill.
#include "status/render.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "status/status.h"

namespace etld::status {
namespace {

using rapidjson::Value;

// "  Events:        ": the original's label column, continuation lines align to it.
constexpr size_t kLabelColumns = 17;
// "daily=4,521 rows" padded to this many characters before "  (watermark".
constexpr size_t kMartLabelColumns = 24;

const Value* member(const Value* obj, std::string_view key) {
    if (obj == nullptr || !obj->IsObject()) return nullptr;
    const auto it = obj->FindMember(Value(rapidjson::StringRef(key.data(), key.size())));
    return it == obj->MemberEnd() ? nullptr : &it->value;
}

std::optional<std::int64_t> optInt(const Value* v) {
    if (v == nullptr) return std::nullopt;
    if (v->IsInt64()) return v->GetInt64();
    if (v->IsUint64()) return static_cast<std::int64_t>(v->GetUint64());
    if (v->IsDouble() && std::isfinite(v->GetDouble()))
        return static_cast<std::int64_t>(std::llround(v->GetDouble()));
    return std::nullopt;
}

std::int64_t intOr0(const Value* v) {
    return optInt(v).value_or(0);
}

std::optional<std::string> optStr(const Value* v) {
    if (v == nullptr || !v->IsString()) return std::nullopt;
    return std::string(v->GetString(), v->GetStringLength());
}

std::string_view keyOf(const Value& name) {
    return {name.GetString(), name.GetStringLength()};
}

// ---- JSON ----------------------------------------------------------------

void writeScalar(const Value& v, std::string& out) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    out.append(buf.GetString(), buf.GetSize());
}

void indent(size_t depth, std::string& out) {
    out.append(depth * 2, ' ');
}

void writeSorted(const Value& v, size_t depth, std::string& out) {
    if (v.IsObject()) {
        if (v.MemberCount() == 0) {
            out += "{}";
            return;
        }
        std::vector<const Value::Member*> members;
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) members.push_back(&*it);
        std::stable_sort(members.begin(), members.end(), [](const auto* l, const auto* r) {
            return keyOf(l->name) < keyOf(r->name);
        });
        out += "{\n";
        for (size_t i = 0; i < members.size(); ++i) {
            indent(depth + 1, out);
            writeScalar(members[i]->name, out);
            out += ": ";
            writeSorted(members[i]->value, depth + 1, out);
            out += i + 1 < members.size() ? ",\n" : "\n";
        }
        indent(depth, out);
        out += '}';
    } else if (v.IsArray()) {
        if (v.Empty()) {
            out += "[]";
            return;
        }
        out += "[\n";
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
            indent(depth + 1, out);
            writeSorted(v[i], depth + 1, out);
            out += i + 1 < v.Size() ? ",\n" : "\n";
        }
        indent(depth, out);
        out += ']';
    } else {
        writeScalar(v, out);
    }
}

// ---- Text ----------------------------------------------------------------

std::string label(std::string_view name) {
    std::string s = "  ";
    s += name;
    s.append(s.size() < kLabelColumns ? kLabelColumns - s.size() : 1, ' ');
    return s;
}

const std::string& continuation() {
    static const std::string kIndent(kLabelColumns, ' ');
    return kIndent;
}

std::string fmtInt(std::int64_t n) {
    return withThousands(static_cast<long long>(n));
}

// "1h 2m 5s": from the largest non-zero unit down, every unit after it shown.
std::string duration(std::int64_t secs) {
    if (secs < 0) secs = 0;
    const std::int64_t parts[] = {secs / 86400, secs % 86400 / 3600, secs % 3600 / 60, secs % 60};
    const char* units[] = {"d", "h", "m", "s"};
    std::string out;
    for (size_t i = 0; i < 4; ++i) {
        if (out.empty() && parts[i] == 0 && i < 3) continue;
        if (!out.empty()) out += ' ';
        out += std::to_string(parts[i]) + units[i];
    }
    return out;
}

// Pairs of a count map by count descending, then key ascending.
std::string countPairs(const Value* obj) {
    std::vector<std::pair<std::string, std::int64_t>> pairs;
    if (obj != nullptr && obj->IsObject()) {
        for (auto it = obj->MemberBegin(); it != obj->MemberEnd(); ++it) {
            if (const auto n = optInt(&it->value))
                pairs.emplace_back(std::string(keyOf(it->name)), *n);
        }
    }
    std::sort(pairs.begin(), pairs.end(), [](const auto& l, const auto& r) {
        return l.second != r.second ? l.second > r.second : l.first < r.first;
    });
    std::string out;
    for (const auto& [key, count] : pairs) {
        if (!out.empty()) out += ' ';
        out += key + "=" + fmtInt(count);
    }
    return out;
}

std::string_view colorOf(std::string_view health) {
    if (health == "live") return "\x1b[1;32m";
    if (health == "syncing" || health == "stale") return "\x1b[1;33m";
    if (health == "error") return "\x1b[1;31m";
    return "\x1b[1m";
}

void headLine(const Value& doc, bool color, std::string& out) {
    const std::string health = optStr(member(&doc, "health")).value_or("unknown");
    std::string line = "ETL pipeline \u2014 " + health + " (";
    const auto since = optInt(member(member(&doc, "watcher"), "seconds_since_refresh"));
    line += since ? "last refresh " + fmtInt(*since) + "s ago" : std::string("no refresh observed");
    line += ')';
    if (color) line = std::string(colorOf(health)) + line + "\x1b[0m";
    out += line + "\n";
}

void eventsBlock(const Value& doc, std::string& out) {
    const Value* events = member(&doc, "events");
    out += "\n" + label("Events:") + fmtInt(intOr0(member(events, "total"))) + " total (" +
           fmtInt(intOr0(member(events, "max_id"))) + " max id)\n";
    const std::string byProvider = countPairs(member(events, "by_provider"));
    if (!byProvider.empty()) out += continuation() + "by provider: " + byProvider + "\n";
    const std::string byCost = countPairs(member(events, "by_cost_source"));
    if (!byCost.empty()) out += continuation() + "by cost source: " + byCost + "\n";
}

void martLine(std::string_view name, const Value& mart, std::int64_t maxId, std::string& out) {
    std::string head =
        std::string(name) + "=" + fmtInt(intOr0(member(&mart, "row_count"))) + " rows";
    if (head.size() < kMartLabelColumns) head.append(kMartLabelColumns - head.size(), ' ');
    const std::int64_t wm = intOr0(member(&mart, "watermark"));
    const std::int64_t behind = maxId - wm;
    out += continuation() + head + "  (watermark " + fmtInt(wm) + ", " +
           (behind > 0 ? fmtInt(behind) + " behind" : std::string("fresh")) + ")\n";
}

void martsBlock(const Value& doc, std::string& out) {
    out += "\n  Marts:\n";
    const Value* marts = member(&doc, "marts");
    const std::int64_t maxId = intOr0(member(member(&doc, "events"), "max_id"));
    // The five in their fixed order, then any a newer daemon added.
    for (std::string_view name : kMartNames) {
        if (const Value* m = member(marts, name)) martLine(name, *m, maxId, out);
    }
    if (marts == nullptr || !marts->IsObject()) return;
    for (auto it = marts->MemberBegin(); it != marts->MemberEnd(); ++it) {
        const std::string_view name = keyOf(it->name);
        if (std::find(kMartNames.begin(), kMartNames.end(), name) == kMartNames.end())
            martLine(name, it->value, maxId, out);
    }
}

void watcherBlock(const Value& doc, std::string& out) {
    const Value* w = member(&doc, "watcher");
    const Value* enabled = member(w, "enabled");
    const Value* running = member(w, "running");
    std::string state;
    if (enabled != nullptr && enabled->IsFalse())
        state = "disabled (--no-watch or ETLD_DISABLE_WATCHER)";
    else if (running != nullptr && running->IsBool())
        state = running->GetBool() ? "running" : "stopped";
    else
        state = "state unknown (daemon not running)";
    out += "\n" + label("Watcher:") + state + "\n";
    if (const auto n = optInt(member(w, "events_in_last_cycle")))
        out += continuation() + "last cycle: " + fmtInt(*n) + " events processed\n";
}

void lagBlock(const Value& doc, std::string& out) {
    const std::int64_t lag = intOr0(member(&doc, "lag_seconds"));
    if (lag != 0) out += "\n  Lag (events behind marts): " + fmtInt(lag) + "\n";
}

void sourceBlock(const Value& doc, std::string& out) {
    std::string line;
    const Value* daemon = member(&doc, "daemon");
    if (optStr(member(&doc, "source")).value_or("") == "daemon" && daemon != nullptr &&
        daemon->IsObject()) {
        line = "daemon (pid " + std::to_string(intOr0(member(daemon, "pid")));
        if (const auto v = optStr(member(daemon, "version"))) line += ", version " + *v;
        line += ", up " + duration(intOr0(member(daemon, "uptime_seconds"))) + ")";
    } else {
        const auto asOf = optStr(member(&doc, "as_of"));
        line =
            asOf ? "database, as of " + *asOf : std::string("database, no daemon state recorded");
        if (const auto holder = optInt(member(member(&doc, "watcher"), "lock_held_by")))
            line += "; lock held by pid " + std::to_string(*holder);
    }
    out += "\n" + label("Source:") + line + "\n";
    out += continuation() + "store " + optStr(member(&doc, "store_path")).value_or("") +
           " (schema " + std::to_string(intOr0(member(&doc, "schema_version"))) + ")\n";
}

void sourcesBlock(const Value& doc, std::string& out) {
    const Value* sources = member(&doc, "sources");
    if (sources == nullptr || !sources->IsObject() || sources->MemberCount() == 0) return;
    bool first = true;
    for (auto it = sources->MemberBegin(); it != sources->MemberEnd(); ++it) {
        const std::string name(keyOf(it->name));
        const Value& s = it->value;
        out += first ? "\n" + label("Sources:") : continuation();
        first = false;
        out += name + ": " + fmtInt(intOr0(member(&s, "files"))) + " files, " +
               fmtInt(intOr0(member(&s, "bytes_pending"))) + " bytes pending, " +
               fmtInt(intOr0(member(&s, "lines_skipped"))) + " lines skipped";
        if (const auto how = optStr(member(&s, "watching"))) out += " (watching " + *how + ")";
        out += "\n";
        if (const auto err = optStr(member(&s, "last_error")))
            out += continuation() + name + " last error: " + *err + "\n";
    }
}

void faultBlock(const Value& doc, std::string& out) {
    const Value* fault = member(&doc, "fault");
    if (fault == nullptr || !fault->IsObject()) return;
    out += "\n" + label("Fault:") + optStr(member(fault, "code")).value_or("") + ": " +
           optStr(member(fault, "message")).value_or("");
    if (const auto since = optStr(member(fault, "since"))) out += " (since " + *since + ")";
    out += "\n";
}

std::string jobHead(const Value& job) {
    std::string s = optStr(member(&job, "job_id")).value_or("");
    const Value* force = member(&job, "force");
    if (force != nullptr && force->IsTrue()) s += " (force)";
    return s;
}

void jobsBlock(const Value& doc, std::string& out) {
    const Value* cur = member(&doc, "current_job");
    if (cur != nullptr && cur->IsObject()) {
        out += "\n" + label("Backfill:") + "running " + jobHead(*cur);
        if (const auto started = optStr(member(cur, "started_at"))) out += ", started " + *started;
        out += "\n" + continuation() + fmtInt(intOr0(member(cur, "bytes_done"))) + " of " +
               fmtInt(intOr0(member(cur, "bytes_total"))) + " bytes, " +
               fmtInt(intOr0(member(cur, "events_done"))) + " events, " +
               fmtInt(intOr0(member(cur, "bytes_per_second"))) + " bytes/s";
        if (const auto eta = optInt(member(cur, "eta_seconds")))
            out += ", eta " + fmtInt(*eta) + "s";
        out += "\n";
    }
    const Value* last = member(&doc, "last_job");
    if (last != nullptr && last->IsObject()) {
        out += "\n" + label("Last backfill:") +
               optStr(member(last, "status")).value_or("finished") + " " + jobHead(*last);
        if (const auto done = optStr(member(last, "completed_at"))) out += ", completed " + *done;
        out += "\n";
        if (const auto err = optStr(member(last, "error")))
            out += continuation() + "error: " + *err + "\n";
    }
}

}  // namespace

std::string renderJsonSorted(const rapidjson::Value& doc) {
    std::string out;
    writeSorted(doc, 0, out);
    out += '\n';
    return out;
}

std::string renderJsonCompact(const rapidjson::Value& doc) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    doc.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

std::string renderText(const rapidjson::Value& doc, bool color) {
    std::string out;
    headLine(doc, color, out);
    eventsBlock(doc, out);
    martsBlock(doc, out);
    watcherBlock(doc, out);
    lagBlock(doc, out);
    sourceBlock(doc, out);
    sourcesBlock(doc, out);
    faultBlock(doc, out);
    jobsBlock(doc, out);
    return out;
}

CheckLine renderCheck(const rapidjson::Value& doc, Answerer who) {
    const std::string health = optStr(member(&doc, "health")).value_or("");
    // Monitoring-plugin codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    int code = 3;
    if (health == "error")
        code = 2;
    else if (health == "stale")
        code = 1;
    else if (health == "live" || health == "syncing")
        code = who == Answerer::Daemon ? 0 : 1;  // from the store: no daemon is serving
    static constexpr const char* kStates[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

    std::string line = std::string("ETLD ") + kStates[code] + " - ";
    line += code == 3 ? "unrecognised health \"" + health + "\"" : health;
    if (who == Answerer::Store) line += " (read from the store)";

    std::int64_t pending = 0;
    if (const Value* sources = member(&doc, "sources"); sources != nullptr && sources->IsObject()) {
        for (auto it = sources->MemberBegin(); it != sources->MemberEnd(); ++it)
            pending += intOr0(member(&it->value, "bytes_pending"));
    }
    const Value* lagValue = member(&doc, "lag_events");
    if (lagValue == nullptr) lagValue = member(&doc, "lag_seconds");
    // Performance data: plain numbers (no separators), the lag's warning
    // threshold after the `;`.
    line += " | events=" + std::to_string(intOr0(member(member(&doc, "events"), "total"))) +
            " lag=" + std::to_string(intOr0(lagValue)) + ";" + std::to_string(kStaleLagEvents) +
            " pending_bytes=" + std::to_string(pending) + "B";
    return {line, code};
}

std::string withThousands(long long n) {
    // The magnitude as unsigned, so that the most negative value works too.
    const unsigned long long mag =
        n < 0 ? 0ULL - static_cast<unsigned long long>(n) : static_cast<unsigned long long>(n);
    const std::string digits = std::to_string(mag);
    std::string out = n < 0 ? "-" : "";
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

}  // namespace etld::status
