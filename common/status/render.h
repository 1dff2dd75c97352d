// Renderers of a status document (as assembled, or as received from the daemon).
#pragma once

#include <rapidjson/document.h>

#include <string>

namespace etld::status {

// Pretty JSON, indent 2, keys sorted at every level, then a newline.
std::string renderJsonSorted(const rapidjson::Value& doc);
// Compact JSON in the document's own key order (the socket's form).
std::string renderJsonCompact(const rapidjson::Value& doc);

// The human summary of status.md "Rendering"; `color` adds bold + colour to
// the first line (the caller decides: a terminal and no NO_COLOR).
std::string renderText(const rapidjson::Value& doc, bool color);

// `--check`: one line with performance data after a `|`, and its exit code.
enum class Answerer { Daemon, Store };
struct CheckLine {
    std::string line;
    int exitCode;
};
CheckLine renderCheck(const rapidjson::Value& doc, Answerer who);

// 1234567 -> "1,234,567"
std::string withThousands(long long n);

}  // namespace etld::status
