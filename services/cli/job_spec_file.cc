#include "services/cli/job_spec_file.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tessera::cli {
namespace {

void AppendJsonString(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

// The field a key names, whichever of protobuf's two JSON spellings it uses: "gpuCount" and
// "gpu_count" are the same field, so giving both is giving it twice.
std::string FieldOf(std::string_view key) {
  std::string field;
  for (char c : key) {
    if (c >= 'A' && c <= 'Z') {
      field += '_';
      field += static_cast<char>(c - 'A' + 'a');
    } else {
      field += c;
    }
  }
  return field;
}

absl::Status Twice(absl::string_view key, absl::string_view where) {
  return absl::InvalidArgumentError(absl::StrCat("job spec: '", key, "' is given twice", where,
                                                 "; each field may appear once (a repeated key would silently win)"));
}

// YAML to JSON with limits: the expanded document (YAML aliases repeat whole subtrees, so 354 bytes
// can stand for billions of values) is bounded, and so are nesting and repeated keys.
class YamlToJson {
 public:
  absl::Status Convert(const YAML::Node& node, std::string& out, int depth = 0) {
    if (++nodes_ > kMaxSpecValues || out.size() > kMaxSpecBytes) {
      return absl::InvalidArgumentError(absl::StrCat("job spec: expands to more than ", kMaxSpecValues, " values or ", kMaxSpecBytes,
                                                     " bytes (YAML aliases repeating a subtree?)"));
    }
    if (static_cast<size_t>(depth) > kMaxSpecDepth) return absl::InvalidArgumentError(absl::StrCat("job spec: nested deeper than ", kMaxSpecDepth, " levels"));
    switch (node.Type()) {
      case YAML::NodeType::Map: return Map(node, out, depth);
      case YAML::NodeType::Sequence: {
        out += '[';
        for (size_t i = 0; i < node.size(); ++i) {
          if (i > 0) out += ',';
          if (absl::Status s = Convert(node[i], out, depth + 1); !s.ok()) return s;
        }
        out += ']';
        return absl::OkStatus();
      }
      case YAML::NodeType::Scalar: {
        static const std::regex kInteger("-?[0-9]+");
        const std::string& text = node.Scalar();
        if (node.Tag() != "!" && (std::regex_match(text, kInteger) || text == "true" || text == "false")) {
          out += text;
        } else {
          AppendJsonString(out, text);
        }
        return absl::OkStatus();
      }
      default:
        out += "null";
        return absl::OkStatus();
    }
  }

 private:
  absl::Status Map(const YAML::Node& node, std::string& out, int depth) {
    out += '{';
    std::map<std::string, int> lines;  // field → line of its first key (1-based)
    bool first = true;
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      const int line = kv.first.Mark().line + 1;
      if (auto [at, fresh] = lines.emplace(FieldOf(key), line); !fresh) {
        return Twice(key, absl::StrCat(" (lines ", at->second, " and ", line, ")"));
      }
      if (!first) out += ',';
      first = false;
      AppendJsonString(out, key);
      out += ':';
      if (absl::Status s = Convert(kv.second, out, depth + 1); !s.ok()) return s;
    }
    out += '}';
    return absl::OkStatus();
  }

  size_t nodes_ = 0;
};

// The string starting at json[at] (an opening quote), its escapes decoded as far as telling keys
// apart needs; `at` ends on the closing quote.
std::string JsonString(std::string_view json, size_t& at) {
  std::string text;
  for (++at; at < json.size() && json[at] != '"'; ++at) {
    if (json[at] != '\\' || at + 1 >= json.size()) {
      text += json[at];
      continue;
    }
    const char e = json[++at];
    if (e == 'u' && at + 4 < json.size()) {
      const std::string hex(json.substr(at + 1, 4));
      const long code = std::strtol(hex.c_str(), nullptr, 16);
      text += code > 0 && code < 0x80 ? std::string(1, static_cast<char>(code)) : "\\u" + absl::AsciiStrToLower(hex);
      at += 4;
    } else {
      text += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
    }
  }
  return text;
}

// Refuses a JSON object that names a field twice (protobuf's parser keeps the last) and nesting
// beyond kMaxSpecDepth. Anything else malformed is left to protobuf's parser, which names it.
absl::Status CheckJsonKeys(std::string_view json) {
  struct Level {
    bool object = false;
    bool expect_key = false;
    std::set<std::string> fields;
  };
  std::vector<Level> open;
  for (size_t at = 0; at < json.size(); ++at) {
    const char c = json[at];
    if (c == '{' || c == '[') {
      if (open.size() >= kMaxSpecDepth) return absl::InvalidArgumentError(absl::StrCat("job spec: nested deeper than ", kMaxSpecDepth, " levels"));
      open.push_back({.object = c == '{', .expect_key = c == '{', .fields = {}});
    } else if ((c == '}' || c == ']') && !open.empty()) {
      open.pop_back();
    } else if (c == ',' && !open.empty()) {
      open.back().expect_key = open.back().object;
    } else if (c == '"') {
      const std::string text = JsonString(json, at);
      if (!open.empty() && open.back().expect_key) {
        if (!open.back().fields.insert(FieldOf(text)).second) return Twice(text, " in one object");
        open.back().expect_key = false;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseJobSpec(const std::string& text) {
  if (text.size() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat("job spec: ", text.size(), " bytes, more than the limit of ", kMaxSpecBytes));
  }
  std::string json;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    if (absl::Status s = CheckJsonKeys(text); !s.ok()) return s;
    json = text;
  } else {
    try {
      if (absl::Status s = YamlToJson().Convert(YAML::Load(text), json); !s.ok()) return s;
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(std::string("job spec is not valid YAML: ") + e.what());
    }
  }
  v1::JobSpec spec;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &spec);
  if (!status.ok()) return absl::InvalidArgumentError("job spec: " + std::string(status.message()));
  return spec;
}

absl::StatusOr<v1::JobSpec> LoadJobSpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read job spec file " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseJobSpec(buffer.str());
}

}  // namespace tessera::cli
