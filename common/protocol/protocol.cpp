#include "protocol/protocol.h"

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <cstring>

namespace etld::protocol {
namespace {

constexpr std::array<std::string_view, 9> kErrorNames = {
    "parse_error", "invalid_request", "unknown_method",    "invalid_params", "request_too_large",
    "busy",        "unavailable",     "permission_denied", "internal",
};

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void writeEnvelopeStart(Writer& w, const rapidjson::Value& id) {
    w.StartObject();
    w.Key("v");
    w.Int(kProtocolVersion);
    w.Key("id");
    id.Accept(w);
}

std::string finish(rapidjson::StringBuffer& buf) {
    std::string line(buf.GetString(), buf.GetSize());
    line += '\n';
    return line;
}

bool isScalar(const rapidjson::Value& v) { return !v.IsObject() && !v.IsArray(); }

}  // namespace

std::string_view errorCodeName(ErrorCode code) { return kErrorNames[static_cast<size_t>(code)]; }

std::optional<ErrorCode> errorCodeFromName(std::string_view name) {
    for (size_t i = 0; i < kErrorNames.size(); ++i)
        if (kErrorNames[i] == name) return static_cast<ErrorCode>(i);
    return std::nullopt;
}

void LineSplitter::feed(std::string_view bytes) {
    if (overflowed_) return;
    // Drop what was handed out before growing, so the buffer never holds
    // more than one partial line plus what just arrived.
    if (consumed_ > 0) {
        buffer_.erase(0, consumed_);
        consumed_ = 0;
    }
    buffer_.append(bytes);
    // Overflow is decided per line, as lines are looked for in next().
}

std::optional<std::string> LineSplitter::next() {
    if (overflowed_) return std::nullopt;
    const size_t from = consumed_ + scanned_;
    const void* nl = from < buffer_.size()
                         ? std::memchr(buffer_.data() + from, '\n', buffer_.size() - from)
                         : nullptr;
    if (!nl) {
        scanned_ = buffer_.size() - consumed_;
        if (scanned_ > maxLineBytes_) {
            overflowed_ = true;
            buffer_.clear();
            buffer_.shrink_to_fit();
            consumed_ = scanned_ = 0;
        }
        return std::nullopt;
    }
    const size_t end = static_cast<size_t>(static_cast<const char*>(nl) - buffer_.data());
    if (end - consumed_ > maxLineBytes_) {
        overflowed_ = true;
        buffer_.clear();
        buffer_.shrink_to_fit();
        consumed_ = scanned_ = 0;
        return std::nullopt;
    }
    std::string line = buffer_.substr(consumed_, end - consumed_);
    consumed_ = end + 1;
    scanned_ = 0;
    return line;
}

bool parseRequest(std::string_view line, Request& out, RequestError& error) {
    rapidjson::Document doc;
    doc.Parse(line.data(), line.size());
    if (doc.HasParseError()) {
        error.code = ErrorCode::ParseError;
        error.message = std::string("request is not valid JSON: ") +
                        rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                        std::to_string(doc.GetErrorOffset());
        error.id.SetNull();
        return false;
    }
    error.id.SetNull();
    auto fail = [&](std::string message) {
        error.code = ErrorCode::InvalidRequest;
        error.message = std::move(message);
        return false;
    };
    if (!doc.IsObject()) return fail("a request is a JSON object");
    if (auto id = doc.FindMember("id"); id != doc.MemberEnd() && isScalar(id->value))
        error.id.CopyFrom(id->value, error.id.GetAllocator());
    auto v = doc.FindMember("v");
    if (v == doc.MemberEnd() || !v->value.IsInt() || v->value.GetInt() != kProtocolVersion)
        return fail("\"v\" must be 1");
    auto id = doc.FindMember("id");
    if (id != doc.MemberEnd() && !isScalar(id->value)) return fail("\"id\" must be a JSON scalar");
    auto method = doc.FindMember("method");
    if (method == doc.MemberEnd() || !method->value.IsString())
        return fail("\"method\" must be a string");
    auto params = doc.FindMember("params");
    if (params != doc.MemberEnd() && !params->value.IsObject() && !params->value.IsNull())
        return fail("\"params\" must be an object");

    out.id.CopyFrom(error.id, out.id.GetAllocator());
    out.method.assign(method->value.GetString(), method->value.GetStringLength());
    if (params != doc.MemberEnd() && params->value.IsObject())
        out.params.CopyFrom(params->value, out.params.GetAllocator());
    else
        out.params.SetObject();
    return true;
}

std::string successLine(const rapidjson::Value& id, const rapidjson::Value& result) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    writeEnvelopeStart(w, id);
    w.Key("ok");
    w.Bool(true);
    w.Key("result");
    result.Accept(w);
    w.EndObject();
    return finish(buf);
}

std::string errorLine(const rapidjson::Value& id, ErrorCode code, std::string_view message,
                      const rapidjson::Value* data) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    writeEnvelopeStart(w, id);
    w.Key("ok");
    w.Bool(false);
    w.Key("error");
    w.StartObject();
    w.Key("code");
    const auto name = errorCodeName(code);
    w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    w.Key("message");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    if (data) {
        w.Key("data");
        data->Accept(w);
    }
    w.EndObject();
    w.EndObject();
    return finish(buf);
}

std::string eventLine(const rapidjson::Value& id, std::string_view event,
                      const rapidjson::Value& result) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    writeEnvelopeStart(w, id);
    w.Key("ok");
    w.Bool(true);
    w.Key("event");
    w.String(event.data(), static_cast<rapidjson::SizeType>(event.size()));
    w.Key("result");
    result.Accept(w);
    w.EndObject();
    return finish(buf);
}

std::string requestLine(std::int64_t id, std::string_view method, const rapidjson::Value* params) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("v");
    w.Int(kProtocolVersion);
    w.Key("id");
    w.Int64(id);
    w.Key("method");
    w.String(method.data(), static_cast<rapidjson::SizeType>(method.size()));
    if (params) {
        w.Key("params");
        params->Accept(w);
    }
    w.EndObject();
    return finish(buf);
}

Result<Response> parseResponse(std::string_view line) {
    rapidjson::Document doc;
    doc.Parse(line.data(), line.size());
    if (doc.HasParseError() || !doc.IsObject())
        return Error{"bad_response", "the daemon's reply is not a JSON object"};
    Response r;
    auto ok = doc.FindMember("ok");
    if (ok == doc.MemberEnd() || !ok->value.IsBool())
        return Error{"bad_response", "the daemon's reply has no \"ok\""};
    r.ok = ok->value.GetBool();
    if (r.ok) {
        auto result = doc.FindMember("result");
        if (result != doc.MemberEnd()) r.result.CopyFrom(result->value, r.result.GetAllocator());
        return r;
    }
    auto error = doc.FindMember("error");
    if (error == doc.MemberEnd() || !error->value.IsObject())
        return Error{"bad_response", "the daemon's error reply has no \"error\" object"};
    const auto& e = error->value;
    if (auto c = e.FindMember("code"); c != e.MemberEnd() && c->value.IsString())
        r.errorCode = c->value.GetString();
    if (auto m = e.FindMember("message"); m != e.MemberEnd() && m->value.IsString())
        r.errorMessage = m->value.GetString();
    if (auto d = e.FindMember("data"); d != e.MemberEnd())
        r.errorData.CopyFrom(d->value, r.errorData.GetAllocator());
    return r;
}

}  // namespace etld::protocol
