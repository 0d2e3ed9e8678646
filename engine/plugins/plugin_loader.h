#pragma once
// Finds plugin libraries and creates plugin objects from them (Boost.DLL). Every object returned
// keeps its library loaded for as long as it lives: the shared_ptr's deleter owns the library.
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
  std::string name;         // the plugin's name, as YAML selects it
  PluginKind kind;          // loss, model or grader
  int abi_version = 0;      // what the library reports
  std::string path;         // absolute path of the library
  std::string description;  // one line
};

class PluginLoader {
 public:
  // Searches, in order: `directories`, then $PREFENGINE_PLUGIN_PATH (':'-separated), then the
  // build's plugin directory and the installed one. The first library with a name wins.
  explicit PluginLoader(std::vector<std::string> directories = {});

  const std::vector<std::string>& search_path() const { return search_path_; }

  // Every valid plugin library in the search path (broken libraries are reported in `problems`).
  std::vector<PluginFile> scan(std::vector<std::string>* problems = nullptr) const;

  // Creates the plugin `name` of `kind`; throws std::invalid_argument naming the known plugins of
  // that kind and the nearest one when there is no such plugin. Unread option keys are rejected.
  std::shared_ptr<Loss> create_loss(const std::string& name, PluginOptions& options) const;
  std::shared_ptr<Model> create_model(const std::string& name, PluginOptions& options) const;
  std::shared_ptr<Grader> create_grader(const std::string& name, PluginOptions& options) const;

  // Names of the plugins of one kind (for messages and validation).
  std::vector<std::string> names(PluginKind kind) const;

  // Loads one library file and creates its plugin, checking the ABI version, the symbols and the
  // kind; every failure is a std::runtime_error naming the file.
  static std::shared_ptr<Plugin> create_from_file(const std::string& path, PluginKind kind,
                                                  PluginOptions& options);
  // Reads a library's info without creating anything.
  static PluginFile inspect(const std::string& path);

 private:
  const PluginFile& find(const std::string& name, PluginKind kind) const;
  std::vector<std::string> search_path_;
  mutable std::vector<PluginFile> cache_;
  mutable bool scanned_ = false;
};

}  // namespace prefengine
