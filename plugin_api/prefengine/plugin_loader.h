#pragma once
// Finds plugin libraries by name and creates plugin objects from them (libprefengine_plugin_loader,
// part of the SDK: CMake target prefengine::plugin_loader). Every object returned keeps its library
// loaded for as long as it lives: the shared_ptr's deleter owns the library.
//
// A plugin of kind K named N is the file libprefengine_K_N.so (see plugin_file_name()); the
// loader opens only that file, so an unrelated or broken library in a plugin directory is never
// loaded unless it is the one asked for. In a few lines:
//
//   prefengine::PluginLoader loader({"/path/to/my/plugins"});
//   prefengine::PluginOptions options;
//   options.set_scalar("beta", "0.1");
//   std::shared_ptr<prefengine::Loss> loss = loader.create_loss("robust_dpo", options);
#include <memory>
#include <string>
#include <vector>

#include "prefengine/plugin.h"

namespace prefengine {

class Grader;
class Loss;
class Model;

// One plugin library found on disk.
struct PluginFile {
  std::string name;          // the plugin's name, as YAML selects it
  PluginKind kind;           // loss, model or grader
  int abi_version = 0;       // what the library reports
  std::string torch_version; // the LibTorch version the library was compiled against
  std::string path;          // absolute path of the library
  std::string description;   // one line
};

class PluginLoader {
 public:
  // Searches, in order: `directories`, then $PREFENGINE_PLUGIN_PATH (':'-separated), then the
  // build's plugin directory and the installed one. The first directory holding the file wins.
  explicit PluginLoader(std::vector<std::string> directories = {});

  const std::vector<std::string>& search_path() const { return search_path_; }

  // The file name of plugin `name` of `kind`: "libprefengine_<kind>_<name>.so", e.g.
  // libprefengine_loss_dpo.so. prefengine_add_plugin(NAME <name> KIND <kind>) builds it.
  static std::string plugin_file_name(PluginKind kind, const std::string& name);

  // Every plugin library in the search path, opened to read its info. Only files named like a
  // plugin (plugin_file_name()) are opened; other files are not touched. A plugin file that fails
  // to load or whose info does not match its file name is reported in `problems`.
  std::vector<PluginFile> scan(std::vector<std::string>* problems = nullptr) const;

  // Creates the plugin `name` of `kind` from the first file plugin_file_name(kind, name) in the
  // search path. When there is none, throws std::invalid_argument "unknown <kind> plugin '<name>'"
  // naming the nearest available name, the available names and the directories searched. A file
  // that is found but cannot be used is a std::runtime_error naming it. Unread option keys are
  // rejected.
  std::shared_ptr<Loss> create_loss(const std::string& name, PluginOptions& options) const;
  std::shared_ptr<Model> create_model(const std::string& name, PluginOptions& options) const;
  std::shared_ptr<Grader> create_grader(const std::string& name, PluginOptions& options) const;

  // Names of the plugins of one kind in the search path, from the file names alone (no library is
  // opened), sorted, without duplicates.
  std::vector<std::string> names(PluginKind kind) const;

  // Loads one library file and creates its plugin, checking the ABI version, the LibTorch version,
  // the symbols and the kind; every failure is a std::runtime_error naming the file.
  static std::shared_ptr<Plugin> create_from_file(const std::string& path, PluginKind kind,
                                                  PluginOptions& options);
  // Reads a library's info without creating anything (with the same checks).
  static PluginFile inspect(const std::string& path);

 private:
  std::string find(const std::string& name, PluginKind kind) const;
  std::vector<std::string> search_path_;
};

}  // namespace prefengine
