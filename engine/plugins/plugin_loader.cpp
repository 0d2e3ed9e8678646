#include "engine/plugins/plugin_loader.h"

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
using InfoFunction = const PluginInfo*();
using CreateFunction = Plugin*(PluginOptions&);

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
  file.path = path;
  file.description = info->description ? info->description : "";
  return file;
}

template <typename Interface>
std::shared_ptr<Interface> create_as(const std::string& path, PluginKind kind,
                                     PluginOptions& options) {
  std::shared_ptr<Plugin> plugin = PluginLoader::create_from_file(path, kind, options);
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

}  // namespace

PluginLoader::PluginLoader(std::vector<std::string> directories)
    : search_path_(std::move(directories)) {
  split_path_list(std::getenv("PREFENGINE_PLUGIN_PATH"), &search_path_);
  search_path_.push_back(PREFENGINE_BUILD_PLUGIN_DIR);
  search_path_.push_back(PREFENGINE_INSTALL_PLUGIN_DIR);
}

PluginFile PluginLoader::inspect(const std::string& path) {
  auto lib = open_library(path);
  return read_info(*lib, path);
}

std::shared_ptr<Plugin> PluginLoader::create_from_file(const std::string& path, PluginKind kind,
                                                       PluginOptions& options) {
  auto lib = open_library(path);
  const PluginFile info = read_info(*lib, path);
  if (info.kind != kind) {
    throw std::runtime_error(path + ": plugin '" + info.name + "' is a " +
                             plugin_kind_name(info.kind) + " plugin, a " + plugin_kind_name(kind) +
                             " plugin was expected here");
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

std::vector<PluginFile> PluginLoader::scan(std::vector<std::string>* problems) const {
  std::vector<PluginFile> found;
  for (const auto& directory : search_path_) {
    boost::system::error_code ec;
    if (!fs::is_directory(directory, ec)) continue;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".so") files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      try {
        PluginFile info = inspect(fs::absolute(file).string());
        bool shadowed = false;
        for (const auto& f : found) {
          if (f.name == info.name && f.kind == info.kind) shadowed = true;
        }
        if (!shadowed) found.push_back(std::move(info));
      } catch (const std::exception& e) {
        if (problems) problems->push_back(e.what());
      }
    }
  }
  return found;
}

std::vector<std::string> PluginLoader::names(PluginKind kind) const {
  if (!scanned_) {
    cache_ = scan();
    scanned_ = true;
  }
  std::vector<std::string> out;
  for (const auto& f : cache_) {
    if (f.kind == kind) out.push_back(f.name);
  }
  return out;
}

const PluginFile& PluginLoader::find(const std::string& name, PluginKind kind) const {
  const auto known = names(kind);
  for (const auto& f : cache_) {
    if (f.kind == kind && f.name == name) return f;
  }
  std::string list;
  for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
  std::string message = std::string("unknown ") + plugin_kind_name(kind) + " plugin '" + name + "'";
  if (!known.empty()) {
    message += " (did you mean '" + nearest_name(name, known) + "'? known: " + list + ")";
  } else {
    message += " (no " + std::string(plugin_kind_name(kind)) + " plugins found in the search path)";
  }
  throw std::invalid_argument(message);
}

std::shared_ptr<Loss> PluginLoader::create_loss(const std::string& name,
                                                PluginOptions& options) const {
  return create_as<Loss>(find(name, PluginKind::kLoss).path, PluginKind::kLoss, options);
}

std::shared_ptr<Model> PluginLoader::create_model(const std::string& name,
                                                  PluginOptions& options) const {
  return create_as<Model>(find(name, PluginKind::kModel).path, PluginKind::kModel, options);
}

std::shared_ptr<Grader> PluginLoader::create_grader(const std::string& name,
                                                    PluginOptions& options) const {
  return create_as<Grader>(find(name, PluginKind::kGrader).path, PluginKind::kGrader, options);
}

}  // namespace prefengine
