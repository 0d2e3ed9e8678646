// The grader plugin libraries export the three symbols, report their name and kind, create a
// working Grader from options, and turn bad options into std::invalid_argument.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "prefengine/grader.h"
#include "prefengine/plugin.h"

namespace {

struct Library {
  explicit Library(const std::string& name) {
    const std::string path = std::string(PREFENGINE_PLUGIN_DIR) + "/libprefengine_grader_" + name + ".so";
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw std::runtime_error(dlerror());
  }
  ~Library() {
    if (handle) dlclose(handle);
  }
  template <typename F>
  F* symbol(const char* name) const {
    return reinterpret_cast<F*>(dlsym(handle, name));
  }
  std::unique_ptr<prefengine::Grader> create(prefengine::PluginOptions& options) const {
    auto* factory = symbol<prefengine::Plugin*(prefengine::PluginOptions&)>(
        PREFENGINE_PLUGIN_SYMBOL_CREATE);
    std::unique_ptr<prefengine::Plugin> plugin(factory(options));
    auto* grader = dynamic_cast<prefengine::Grader*>(plugin.get());
    if (!grader) return nullptr;
    plugin.release();
    return std::unique_ptr<prefengine::Grader>(grader);
  }
  void* handle = nullptr;
};

void expect_info(const Library& lib, const char* name) {
  auto* abi = lib.symbol<int()>(PREFENGINE_PLUGIN_SYMBOL_ABI);
  auto* info = lib.symbol<const prefengine::PluginInfo*()>(PREFENGINE_PLUGIN_SYMBOL_INFO);
  ASSERT_NE(abi, nullptr);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(abi(), prefengine::kPluginAbiVersion);
  EXPECT_STREQ(info()->name, name);
  EXPECT_EQ(info()->kind, prefengine::PluginKind::kGrader);
}

}  // namespace

TEST(GraderPlugins, MathLoadsAndGrades) {
  Library lib("math");
  expect_info(lib, "math");
  prefengine::PluginOptions options("grader");
  options.set_scalar("tolerance", "1e-4");
  auto grader = lib.create(options);
  ASSERT_TRUE(grader);
  EXPECT_TRUE(options.unread_keys().empty());
  EXPECT_EQ(grader->max_score(), 5);
  EXPECT_EQ(grader->grade({"1+1?", "1 + 1 = 2, so \\boxed{2}", std::string("2")}).score, 5);
  prefengine::PluginOptions bad("grader");
  bad.set_scalar("tolerance", "-1");
  EXPECT_THROW(lib.create(bad), std::invalid_argument);
}

TEST(GraderPlugins, PoemLoadsAndGrades) {
  Library lib("poem");
  expect_info(lib, "poem");
  prefengine::PluginOptions options("grader");
  auto grader = lib.create(options);
  ASSERT_TRUE(grader);
  EXPECT_EQ(grader->dimensions().size(), 5u);
  EXPECT_EQ(grader->grade({"写一首五言绝句", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
                           std::nullopt})
                .score,
            1.0);
}

TEST(GraderPlugins, SloganLoadsAndGrades) {
  Library lib("slogan");
  expect_info(lib, "slogan");
  prefengine::PluginOptions options("grader");
  options.set_scalar("required_keywords", "绿色");
  auto grader = lib.create(options);
  ASSERT_TRUE(grader);
  EXPECT_EQ(grader->grade({"口号", "低碳出行", std::nullopt}).dimensions[1].second, 0.0);
}
