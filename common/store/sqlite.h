// Thin RAII over the SQLite C API: one owner per connection, statement and
// transaction. Errors are captured at once — extended code and message —
// inside the returned Error, before another call can overwrite them.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/result.h"

namespace etld::store {

Error sqliteError(sqlite3* db, int rc, std::string_view what);

class Statement {
public:
    Statement() = default;
    explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
    Statement(Statement&& o) noexcept
        : stmt_(std::exchange(o.stmt_, nullptr)), used_(std::exchange(o.used_, false)) {}
    Statement& operator=(Statement&& o) noexcept {
        if (this != &o) {
            finalize();
            stmt_ = std::exchange(o.stmt_, nullptr);
            used_ = std::exchange(o.used_, false);
        }
        return *this;
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement() { finalize(); }

    // Binds are 1-based, as in SQLite.
    Statement& bind(int i, std::int64_t v);
    Statement& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Statement& bind(int i, double v);
    Statement& bind(int i, std::string_view v);  // copied (SQLITE_TRANSIENT)
    // Not copied (SQLITE_STATIC): for the hot paths, where the caller keeps
    // the text alive and unchanged until the statement is reset (run() and
    // every cached() reset it). A copy per bound text was ~4% of an ingest.
    Statement& bindView(int i, std::string_view v);
    Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    Statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    Statement& bind(int i, const std::optional<std::string>& v);
    Statement& bind(int i, const std::optional<std::int64_t>& v);
    Statement& bindNull(int i);

    // true: a row is ready; false: done.
    Result<bool> step();
    // Runs to completion, expecting no rows; resets for reuse.
    Status run();
    void reset();

    std::int64_t columnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
    double columnDouble(int i) const { return sqlite3_column_double(stmt_, i); }
    std::string columnText(int i) const;
    // The same text without a copy: valid until the statement steps again or is reset.
    std::string_view columnView(int i) const;
    std::optional<std::string> columnOptText(int i) const;
    std::optional<std::int64_t> columnOptInt(int i) const;
    bool columnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

    sqlite3_stmt* handle() const { return stmt_; }
    // Bound or stepped since the last reset(): a reset would change something.
    bool used() const { return used_; }

private:
    void finalize();
    sqlite3_stmt* stmt_ = nullptr;
    bool used_ = false;
};

class Connection {
public:
    // `flags` as for sqlite3_open_v2; the path may be a file: URI.
    static Result<Connection> open(const std::string& path, int flags);

    Connection() = default;
    Connection(Connection&&) noexcept;
    Connection& operator=(Connection&&) noexcept;
    ~Connection();

    Status exec(std::string_view sql);
    Result<Statement> prepare(std::string_view sql);
    // A statement prepared once and kept for reuse, keyed by its text.
    // The returned reference is valid for the connection's life; it is reset.
    Result<Statement*> cached(std::string_view sql);
    // A single integer from a query returning one row (0 when no row).
    Result<std::int64_t> queryInt(std::string_view sql);

    std::int64_t lastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
    int changes() const { return sqlite3_changes(db_); }
    sqlite3* handle() const { return db_; }
    bool isOpen() const { return db_ != nullptr; }

private:
    explicit Connection(sqlite3* db) : db_(db) {}
    sqlite3* db_ = nullptr;
    // Looked up on every statement a step runs (about ten per event), so by
    // the text as given, without copying it, and hashed on its length and
    // ends: statement texts are long and few, and equal hashes still compare
    // the whole text.
    struct SqlTextHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view sql) const noexcept;
    };
    std::unordered_map<std::string, std::unique_ptr<Statement>, SqlTextHash, std::equal_to<>> cache_;
};

// BEGIN IMMEDIATE (or DEFERRED for reads) on construction via begin(); the
// destructor rolls back whatever was not committed.
class Transaction {
public:
    enum class Kind { Immediate, Deferred };
    static Result<Transaction> begin(Connection& db, Kind kind = Kind::Immediate);
    Transaction(Transaction&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
    Transaction& operator=(Transaction&&) = delete;
    Transaction(const Transaction&) = delete;
    ~Transaction();
    Status commit();

private:
    explicit Transaction(Connection* db) : db_(db) {}
    Connection* db_;
};

}  // namespace etld::store
