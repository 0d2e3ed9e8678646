#include "engine/config/yaml_options.h"

#include <stdexcept>

#include <yaml-cpp/yaml.h>

namespace prefengine {
namespace {

void flatten(const YAML::Node& node, const std::string& file, const std::string& prefix,
             PluginOptions& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it->first.Scalar() : prefix + "." + it->first.Scalar();
    const YAML::Node& value = it->second;
    OptionEntry entry;
    entry.location = node_location(value.IsNull() ? it->first : value, file);
    if (value.IsMap()) {
      flatten(value, file, key, out);
      continue;
    }
    if (value.IsSequence()) {
      entry.is_list = true;
      bool scalars = true;
      for (const auto& item : value) {
        if (!item.IsScalar()) scalars = false;
      }
      if (scalars) {
        for (const auto& item : value) entry.list.push_back(item.Scalar());
      } else {
        entry.scalar = "<list of maps>";
      }
    } else if (value.IsScalar()) {
      entry.scalar = value.Scalar();
    }
    out.set(key, std::move(entry));
  }
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : text) {
    if (c == sep) {
      parts.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  parts.push_back(current);
  return parts;
}

}  // namespace

namespace {

void check_node(const YAML::Node& node, const std::string& file, size_t max_nodes, size_t& visited) {
  if (++visited > max_nodes) {
    throw std::invalid_argument(file + ": the YAML expands to more than " + std::to_string(max_nodes) +
                                " values (through aliases?): expected a plain experiment file");
  }
  if (node.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& item : node) {
      if (item.first.IsScalar()) {
        const std::string key = item.first.Scalar();
        auto [it, inserted] = seen.emplace(key, item.first.Mark());
        if (!inserted) {
          throw std::invalid_argument(node_location(item.first, file) + ": key '" + key +
                                      "' given twice (first at line " + std::to_string(it->second.line + 1) +
                                      "): expected each key once");
        }
      }
      check_node(item.second, file, max_nodes, visited);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) check_node(item, file, max_nodes, visited);
  }
}

}  // namespace

void check_yaml_document(const YAML::Node& root, const std::string& file, size_t max_nodes) {
  size_t visited = 0;
  check_node(root, file, max_nodes, visited);
}

std::string node_location(const YAML::Node& node, const std::string& file) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return file;
  // A value can only sit at 1:1 of a config file when the file is a bare scalar; values parsed
  // from a --set override start there.
  if (mark.line == 0 && mark.column == 0 && !node.IsMap()) return "--set";
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

PluginOptions options_from_yaml(const YAML::Node& map, const std::string& file,
                                const std::string& path) {
  PluginOptions out(path, node_location(map, file));
  if (map && map.IsMap()) flatten(map, file, "", out);
  return out;
}

PluginOptions sub_options(const PluginOptions& options, const std::string& prefix) {
  const std::string full = options.path().empty() ? prefix : options.path() + "." + prefix;
  std::string location = options.location();
  PluginOptions out(full, location);
  const std::string head = prefix + ".";
  for (const auto& [key, entry] : options.entries()) {
    if (key.compare(0, head.size(), head) == 0) out.set(key.substr(head.size()), entry);
  }
  return out;
}

void mark_read(PluginOptions& options, const std::string& prefix) {
  const std::string head = prefix + ".";
  for (const auto& [key, entry] : options.entries()) {
    if (key == prefix || key.compare(0, head.size(), head) == 0) (void)options.get_string_list(key, {});
  }
}

void apply_override(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::invalid_argument("--set " + assignment + ": expected key.path=value");
  }
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument("--set " + assignment + ": the value is not valid YAML: " + e.msg);
  }
  const auto parts = split(path, '.');
  // yaml-cpp nodes are handles: walk with copies that alias the tree.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node current = chain.back();
    const std::string& part = parts[i];
    if (current.IsSequence()) {
      YAML::Node next;
      bool found = false;
      bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
      if (numeric) {
        const size_t index = std::stoul(part);
        if (index < current.size()) {
          next = current[index];
          found = true;
        }
      } else {
        for (size_t k = 0; k < current.size(); ++k) {
          if (current[k].IsMap() && current[k]["name"] && current[k]["name"].Scalar() == part) {
            next = current[k];
            found = true;
          }
        }
      }
      if (!found) {
        throw std::invalid_argument("--set " + assignment + ": '" + part +
                                    "' is neither an index nor the name of an element of " +
                                    (i == 0 ? std::string("the config") : parts[i - 1]));
      }
      chain.push_back(next);
    } else {
      if (current[part] && !current[part].IsMap() && !current[part].IsSequence()) {
        throw std::invalid_argument("--set " + assignment + ": '" + part + "' is a scalar, not a block");
      }
      if (!current[part]) current[part] = YAML::Node(YAML::NodeType::Map);
      chain.push_back(current[part]);
    }
  }
  YAML::Node parent = chain.back();
  if (parent.IsSequence()) {
    throw std::invalid_argument("--set " + assignment + ": cannot replace a whole list element");
  }
  parent[parts.back()] = value;
}

}  // namespace prefengine
