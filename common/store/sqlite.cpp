#include "store/sqlite.h"

#include <algorithm>
#include <mutex>
#include <utility>

namespace etld::store {

Error sqliteError(sqlite3* db, int rc, std::string_view what) {
    const int extended = db ? sqlite3_extended_errcode(db) : rc;
    std::string message(what);
    message += ": ";
    message += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    const int primary = extended & 0xff;
    std::string code = "store_error";
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = "store_busy";
    else if (primary == SQLITE_FULL) code = "store_full";
    else if (primary == SQLITE_IOERR) code = "store_io";
    else if (primary == SQLITE_READONLY || primary == SQLITE_PERM || primary == SQLITE_AUTH)
        code = "store_readonly";
    else if (primary == SQLITE_CANTOPEN) code = "store_cantopen";
    else if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) code = "store_corrupt";
    return Error{code, std::move(message), extended};
}

Statement& Statement::bind(int i, std::int64_t v) {
    used_ = true;
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
}
Statement& Statement::bind(int i, double v) {
    used_ = true;
    sqlite3_bind_double(stmt_, i, v);
    return *this;
}
Statement& Statement::bind(int i, std::string_view v) {
    used_ = true;
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
}
Statement& Statement::bindView(int i, std::string_view v) {
    used_ = true;
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
}
Statement& Statement::bind(int i, const std::optional<std::string>& v) {
    return v ? bind(i, std::string_view(*v)) : bindNull(i);
}
Statement& Statement::bind(int i, const std::optional<std::int64_t>& v) {
    return v ? bind(i, *v) : bindNull(i);
}
Statement& Statement::bindNull(int i) {
    used_ = true;
    sqlite3_bind_null(stmt_, i);
    return *this;
}

Result<bool> Statement::step() {
    used_ = true;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Error e = sqliteError(sqlite3_db_handle(stmt_), rc, "step");
    sqlite3_reset(stmt_);
    return e;
}

Status Statement::run() {
    auto r = step();
    reset();
    if (!r) return r.error();
    return {};
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    used_ = false;
}

std::string Statement::columnText(int i) const { return std::string(columnView(i)); }

std::string_view Statement::columnView(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    if (!p) return {};
    return {reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, i))};
}

std::optional<std::string> Statement::columnOptText(int i) const {
    if (columnIsNull(i)) return std::nullopt;
    return columnText(i);
}

std::optional<std::int64_t> Statement::columnOptInt(int i) const {
    if (columnIsNull(i)) return std::nullopt;
    return columnInt(i);
}

void Statement::finalize() {
    if (stmt_) sqlite3_finalize(stmt_);
    stmt_ = nullptr;
}

namespace {

// SQLite keeps allocation statistics behind a global mutex taken on every
// sqlite3_malloc and sqlite3_free; nothing here reads them, and on a cold
// ingest that mutex was ~6% of the CPU. The setting must precede SQLite's
// initialization, hence once, before the first open.
void configureLibraryOnce() {
    static std::once_flag once;
    std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

Result<Connection> Connection::open(const std::string& path, int flags) {
    configureLibraryOnce();
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
        Error e = sqliteError(db, rc, "cannot open " + path);
        sqlite3_close_v2(db);
        return e;
    }
    sqlite3_extended_result_codes(db, 1);
    return Connection(db);
}

Connection::Connection(Connection&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)), cache_(std::move(o.cache_)) {}

Connection& Connection::operator=(Connection&& o) noexcept {
    if (this != &o) {
        cache_.clear();
        if (db_) sqlite3_close_v2(db_);
        db_ = std::exchange(o.db_, nullptr);
        cache_ = std::move(o.cache_);
    }
    return *this;
}

Connection::~Connection() {
    cache_.clear();  // statements first: close_v2 would otherwise defer
    if (db_) sqlite3_close_v2(db_);
}

Status Connection::exec(std::string_view sql) {
    const std::string text(sql);
    char* msg = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK) return sqliteError(db_, rc, "exec");
    return {};
}

Result<Statement> Connection::prepare(std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return sqliteError(db_, rc, "prepare");
    return Statement(stmt);
}

std::size_t Connection::SqlTextHash::operator()(std::string_view sql) const noexcept {
    constexpr std::size_t kEnd = 24;
    const std::size_t n = std::min(sql.size(), kEnd);
    const std::hash<std::string_view> hash;
    return hash(sql.substr(0, n)) ^ (hash(sql.substr(sql.size() - n)) * 31) ^ sql.size();
}

Result<Statement*> Connection::cached(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
        // Most callers reset (run() does); resetting again cleared every
        // binding a second time, 1% of a first ingest's writer thread.
        if (it->second->used()) it->second->reset();
        return it->second.get();
    }
    auto stmt = prepare(sql);
    if (!stmt) return stmt.error();
    auto owned = std::make_unique<Statement>(std::move(stmt).value());
    Statement* raw = owned.get();
    cache_.emplace(std::string(sql), std::move(owned));
    return raw;
}

Result<std::int64_t> Connection::queryInt(std::string_view sql) {
    auto stmt = cached(sql);
    if (!stmt) return stmt.error();
    auto row = (*stmt)->step();
    if (!row) return row.error();
    const std::int64_t v = *row ? (*stmt)->columnInt(0) : 0;
    (*stmt)->reset();
    return v;
}

Result<Transaction> Transaction::begin(Connection& db, Kind kind) {
    auto st = db.exec(kind == Kind::Immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
    if (!st) return st.error();
    return Transaction(&db);
}

Transaction::~Transaction() {
    if (db_) (void)db_->exec("ROLLBACK");
}

Status Transaction::commit() {
    auto st = db_->exec("COMMIT");
    if (!st) return st;  // still open: the destructor rolls back
    db_ = nullptr;
    return {};
}

}  // namespace etld::store
