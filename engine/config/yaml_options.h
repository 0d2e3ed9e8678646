#pragma once
// YAML blocks as PluginOptions: nested maps are flattened to "a.b" keys, each value keeps the
// file:line:column it came from, so every later check can name it.
#include <map>
#include <string>
#include <vector>

#include "prefengine/plugin_options.h"

namespace YAML {
class Node;
}

namespace prefengine {

// The location of a YAML node: "file:line:column" (1-based), or the --set text that wrote it.
std::string node_location(const YAML::Node& node, const std::string& file);

// Refuses what YAML allows but a config must not have: a key given twice in one map ("file:l:c:
// key 'x' given twice (first at line L)") and documents that expand past `max_nodes` nodes through
// aliases (an alias bomb). Throws std::invalid_argument.
void check_yaml_document(const YAML::Node& root, const std::string& file, size_t max_nodes = 100000);

// Flattens a YAML map. `path` names the block in messages (e.g. "stages[1]").
// Lists of maps are not flattened: they become entries whose `list` is empty and whose scalar is
// "<list of maps>", so reading them as a scalar fails with a clear message.
PluginOptions options_from_yaml(const YAML::Node& map, const std::string& file,
                                const std::string& path);

// The sub-block under `prefix` (e.g. "loss") as its own options with the path extended.
PluginOptions sub_options(const PluginOptions& options, const std::string& prefix);

// Marks every key under `prefix` as read (its block is validated by someone else).
void mark_read(PluginOptions& options, const std::string& prefix);

// Applies "a.b.c=value" overrides to a YAML tree. Sequence elements are addressed by index
// (stages.1.steps) or, for maps with a `name`, by that name (stages.dpo.steps). The value is
// parsed as YAML, so lists work. Throws std::invalid_argument naming the override.
void apply_override(YAML::Node& root, const std::string& assignment);

}  // namespace prefengine
