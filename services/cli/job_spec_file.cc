#include "services/cli/job_spec_file.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <sstream>

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

void YamlToJson(const YAML::Node& node, std::string& out) {
  static const std::regex kInteger("-?[0-9]+");
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, kv.first.as<std::string>());
        out += ':';
        YamlToJson(kv.second, out);
      }
      out += '}';
      break;
    }
    case YAML::NodeType::Sequence: {
      out += '[';
      for (size_t i = 0; i < node.size(); ++i) {
        if (i > 0) out += ',';
        YamlToJson(node[i], out);
      }
      out += ']';
      break;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = node.Scalar();
      if (node.Tag() != "!" && (std::regex_match(s, kInteger) || s == "true" || s == "false")) {
        out += s;
      } else {
        AppendJsonString(out, s);
      }
      break;
    }
    default:
      out += "null";
  }
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseJobSpec(const std::string& text) {
  std::string json;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    json = text;
  } else {
    try {
      YamlToJson(YAML::Load(text), json);
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
