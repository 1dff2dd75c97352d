// The store's schema, as numbered migrations recorded in PRAGMA user_version.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "store/sqlite.h"

namespace etld::store {

// The newest schema this build knows. Readers refuse a store above it.
std::int64_t latestSchemaVersion();

// Reads PRAGMA user_version.
Result<std::int64_t> schemaVersion(Connection& db);

// Applies every migration above the store's version, each in its own
// BEGIN IMMEDIATE transaction. Only the daemon calls this, at start-up.
// `beforeEach(version)` runs before each migration (systemd start-up
// extension); it may be empty.
// `upTo` stops at an older version (tests of a migration on the store it
// upgrades).
Status migrate(Connection& db, const std::function<void(std::int64_t)>& beforeEach = {},
               std::int64_t upTo = latestSchemaVersion());

// The five indexes store.md lists on usage_events (two of them with more
// columns since migration 8), which readers use, and the marts when a
// retraction takes away a session's or a project's earliest or latest event.
// A first ingest into an empty store drops them and builds them again once
// its catch-up is done: one sort each instead of a B-tree insert per event
// and index. Both run inside the caller's transaction. openWriter ensures
// them, so a daemon stopped mid-way leaves no store without them.
Status dropReadIndexes(Connection& db);
Status ensureReadIndexes(Connection& db);
// One of them, by name: the marts seek a session's or a project's earliest
// and latest event through idx_events_session and idx_events_project
// (store/marts.cpp), and build the one they need at once when a first
// ingest has it dropped.
Status ensureReadIndex(Connection& db, std::string_view name);

// idx_events_key, UNIQUE(event_key) since migration 6: the identity of
// sources.md, which ingest looks events up by. A first ingest drops it too
// and finds its events' keys in memory meanwhile (daemon/event_keys.h); the
// same open ensures it.
Status dropEventKeyIndex(Connection& db);
Status ensureEventKeyIndex(Connection& db);

}  // namespace etld::store
