#include "prefengine/plugin_loader.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include <boost/dll/shared_library.hpp>
#include <boost/filesystem.hpp>

#include "prefengine/grader.h"
#include "prefengine/loss.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;
using AbiFunction = int();
using TorchVersionFunction = const char*();
using InfoFunction = const PluginInfo*();
using CreateFunction = Plugin*(PluginOptions&);

constexpr const char* kFilePrefix = "libprefengine_";
constexpr const char* kFileSuffix = ".so";
constexpr PluginKind kKinds[] = {PluginKind::kLoss, PluginKind::kModel, PluginKind::kGrader};

std::shared_ptr<boost::dll::shared_library> open_library(const std::string& path) {
  if (!fs::exists(path)) {
    throw std::runtime_error(path + ": plugin library not found");
  }
  try {
    // rtld_global is not needed: plugins link libprefengine_plugin_api themselves.
    return std::make_shared<boost::dll::shared_library>(path, boost::dll::load_mode::rtld_lazy);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": cannot load plugin library: " + e.what());
  }
}

void require_symbol(const boost::dll::shared_library& lib, const std::string& path,
                    const char* symbol) {
  if (!lib.has(symbol)) {
    throw std::runtime_error(path + ": not a prefengine plugin: the symbol '" + symbol +
                             "' is missing (export it with PREFENGINE_PLUGIN)");
  }
}

PluginFile read_info(const boost::dll::shared_library& lib, const std::string& path) {
  require_symbol(lib, path, PREFENGINE_PLUGIN_SYMBOL_ABI);
  const int version = lib.get<AbiFunction>(PREFENGINE_PLUGIN_SYMBOL_ABI)();
  if (version != kPluginAbiVersion) {
    std::ostringstream message;
    message << path << ": plugin ABI version mismatch: the library's " PREFENGINE_PLUGIN_SYMBOL_ABI
            << "() returns " << version << ", this engine needs " << kPluginAbiVersion
            << " (rebuild the plugin against this engine's plugin_api)";
    throw std::runtime_error(message.str());
  }
  // The same ABI version with another LibTorch still breaks: at::Tensor and the autograd classes
  // cross the boundary, and LibTorch changes their layout between releases.
  require_symbol(lib, path, PREFENGINE_PLUGIN_SYMBOL_TORCH);
  const char* plugin_torch = lib.get<TorchVersionFunction>(PREFENGINE_PLUGIN_SYMBOL_TORCH)();
  const std::string torch = plugin_torch ? plugin_torch : "(none)";
  if (torch != torch_version()) {
    throw std::runtime_error(path + ": plugin built against LibTorch " + torch +
                             ", this engine uses LibTorch " + torch_version() +
                             " (rebuild the plugin against the engine's LibTorch)");
  }
  require_symbol(lib, path, PREFENGINE_PLUGIN_SYMBOL_INFO);
  require_symbol(lib, path, PREFENGINE_PLUGIN_SYMBOL_CREATE);
  const PluginInfo* info = lib.get<InfoFunction>(PREFENGINE_PLUGIN_SYMBOL_INFO)();
  if (info == nullptr || info->name == nullptr) {
    throw std::runtime_error(path + ": " PREFENGINE_PLUGIN_SYMBOL_INFO "() returned no name");
  }
  PluginFile file;
  file.name = info->name;
  file.kind = info->kind;
  file.abi_version = version;
  file.torch_version = torch;
  file.path = path;
  file.description = info->description ? info->description : "";
  return file;
}

// The kind and name encoded in a file name libprefengine_<kind>_<name>.so; false for any other.
bool parse_file_name(const std::string& file, PluginKind* kind, std::string* name) {
  const std::string prefix = kFilePrefix, suffix = kFileSuffix;
  if (file.size() <= prefix.size() + suffix.size() || file.compare(0, prefix.size(), prefix) != 0 ||
      file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  const std::string middle = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
  for (PluginKind k : kKinds) {
    const std::string kind_prefix = std::string(plugin_kind_name(k)) + "_";
    if (middle.size() > kind_prefix.size() && middle.compare(0, kind_prefix.size(), kind_prefix) == 0) {
      *kind = k;
      *name = middle.substr(kind_prefix.size());
      return true;
    }
  }
  return false;
}

// Plugin names become file names: letters, digits, '_' and '-' only, so that a name from a YAML
// file cannot reach outside the plugin directories ("../x").
void check_name(const std::string& name, PluginKind kind) {
  const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  if (!ok) {
    throw std::invalid_argument(std::string("unknown ") + plugin_kind_name(kind) + " plugin '" + name +
                                "' (a plugin name has only letters, digits, '_' and '-')");
  }
}

// The plugin files in one directory, sorted by file name: (kind, name, absolute path).
struct Candidate {
  PluginKind kind;
  std::string name;
  std::string path;
};

std::vector<Candidate> list_directory(const std::string& directory) {
  std::vector<Candidate> out;
  boost::system::error_code ec;
  if (!fs::is_directory(directory, ec)) return out;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    Candidate c;
    if (parse_file_name(it->path().filename().string(), &c.kind, &c.name)) {
      c.path = fs::absolute(it->path()).string();
      out.push_back(std::move(c));
    }
  }
  std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  return out;
}

// Loads `path` and creates its plugin; with `expected_name`, the library must call itself that
// (the loader found it by its file name).
std::shared_ptr<Plugin> create_plugin(const std::string& path, PluginKind kind,
                                      const std::string* expected_name, PluginOptions& options) {
  auto lib = open_library(path);
  const PluginFile info = read_info(*lib, path);
  if (info.kind != kind) {
    throw std::runtime_error(path + ": plugin '" + info.name + "' is a " +
                             plugin_kind_name(info.kind) + " plugin, a " + plugin_kind_name(kind) +
                             " plugin was expected here");
  }
  if (expected_name != nullptr && info.name != *expected_name) {
    throw std::runtime_error(path + ": the file name says plugin '" + *expected_name +
                             "', the library's " PREFENGINE_PLUGIN_SYMBOL_INFO "() says '" + info.name +
                             "' (the name in PREFENGINE_PLUGIN and prefengine_add_plugin must agree)");
  }
  auto create = lib->get<CreateFunction>(PREFENGINE_PLUGIN_SYMBOL_CREATE);
  Plugin* raw = nullptr;
  try {
    raw = create(options);
  } catch (const std::invalid_argument& e) {
    // Option errors already name the key and its location.
    throw std::invalid_argument(e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error("plugin '" + info.name + "' (" + path + ") failed to start: " + e.what());
  }
  if (raw == nullptr) {
    throw std::runtime_error(path + ": " PREFENGINE_PLUGIN_SYMBOL_CREATE "() returned null");
  }
  // The deleter owns the library, so the code of the object outlives the object.
  std::shared_ptr<Plugin> plugin(raw, [lib](Plugin* p) { delete p; });
  try {
    options.reject_unread();
  } catch (...) {
    plugin.reset();
    throw;
  }
  return plugin;
}

template <typename Interface>
std::shared_ptr<Interface> create_as(const std::string& path, PluginKind kind, const std::string& name,
                                     PluginOptions& options) {
  std::shared_ptr<Plugin> plugin = create_plugin(path, kind, &name, options);
  auto typed = std::dynamic_pointer_cast<Interface>(plugin);
  if (!typed) {
    throw std::runtime_error(path + ": the object created does not implement the " +
                             plugin_kind_name(kind) + " interface");
  }
  return typed;
}

void split_path_list(const char* text, std::vector<std::string>* out) {
  if (text == nullptr) return;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ':')) {
    if (!item.empty()) out->push_back(item);
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

PluginLoader::PluginLoader(std::vector<std::string> directories)
    : search_path_(std::move(directories)) {
  split_path_list(std::getenv("PREFENGINE_PLUGIN_PATH"), &search_path_);
  search_path_.push_back(PREFENGINE_BUILD_PLUGIN_DIR);
  search_path_.push_back(PREFENGINE_INSTALL_PLUGIN_DIR);
}

std::string PluginLoader::plugin_file_name(PluginKind kind, const std::string& name) {
  return std::string(kFilePrefix) + plugin_kind_name(kind) + "_" + name + kFileSuffix;
}

PluginFile PluginLoader::inspect(const std::string& path) {
  auto lib = open_library(path);
  return read_info(*lib, path);
}

std::shared_ptr<Plugin> PluginLoader::create_from_file(const std::string& path, PluginKind kind,
                                                       PluginOptions& options) {
  return create_plugin(path, kind, nullptr, options);
}

std::vector<PluginFile> PluginLoader::scan(std::vector<std::string>* problems) const {
  std::vector<PluginFile> found;
  // (kind, name) of every file met so far: a later file of the same name is shadowed, as in
  // find(), even when the first one is broken.
  std::vector<std::pair<PluginKind, std::string>> seen;
  for (const auto& directory : search_path_) {
    for (const auto& candidate : list_directory(directory)) {
      const auto key = std::make_pair(candidate.kind, candidate.name);
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
      seen.push_back(key);
      try {
        PluginFile info = inspect(candidate.path);
        if (info.name != candidate.name || info.kind != candidate.kind) {
          throw std::runtime_error(candidate.path + ": the file name says " +
                                   plugin_kind_name(candidate.kind) + " plugin '" + candidate.name +
                                   "', the library says " + plugin_kind_name(info.kind) + " plugin '" +
                                   info.name + "'");
        }
        found.push_back(std::move(info));
      } catch (const std::exception& e) {
        if (problems) problems->push_back(e.what());
      }
    }
  }
  return found;
}

std::vector<std::string> PluginLoader::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto& directory : search_path_) {
    for (const auto& candidate : list_directory(directory)) {
      if (candidate.kind == kind) out.push_back(candidate.name);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string PluginLoader::find(const std::string& name, PluginKind kind) const {
  check_name(name, kind);
  const std::string file = plugin_file_name(kind, name);
  for (const auto& directory : search_path_) {
    const fs::path path = fs::path(directory) / file;
    boost::system::error_code ec;
    if (fs::is_regular_file(path, ec)) return fs::absolute(path).string();
  }
  const auto known = names(kind);
  std::string message = std::string("unknown ") + plugin_kind_name(kind) + " plugin '" + name + "'";
  if (!known.empty()) {
    message += " (did you mean '" + nearest_name(name, known) + "'? available: " + join(known) + ")";
  } else {
    message += " (no " + std::string(plugin_kind_name(kind)) + " plugins available)";
  }
  message += "; looked for " + file + " in: " + join(search_path_);
  throw std::invalid_argument(message);
}

std::shared_ptr<Loss> PluginLoader::create_loss(const std::string& name,
                                                PluginOptions& options) const {
  return create_as<Loss>(find(name, PluginKind::kLoss), PluginKind::kLoss, name, options);
}

std::shared_ptr<Model> PluginLoader::create_model(const std::string& name,
                                                  PluginOptions& options) const {
  return create_as<Model>(find(name, PluginKind::kModel), PluginKind::kModel, name, options);
}

std::shared_ptr<Grader> PluginLoader::create_grader(const std::string& name,
                                                    PluginOptions& options) const {
  return create_as<Grader>(find(name, PluginKind::kGrader), PluginKind::kGrader, name, options);
}

}  // namespace prefengine
