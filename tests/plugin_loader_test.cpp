// The SDK's plugin loader: version (ABI and LibTorch), symbol, kind and file errors name the
// file; plugins are found by file name, and no other file is opened; objects keep their library
// loaded. The plugin factory: an experiment's model and a stage's loss from their blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <boost/filesystem.hpp>

#include "engine/config/experiment_config.h"
#include "engine/plugins/plugin_factory.h"
#include "prefengine/grader.h"
#include "prefengine/model.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_loader.h"
#include "test_util.h"

namespace prefengine {
namespace {

const std::string kTestPlugins = PREFENGINE_TEST_PLUGIN_DIR;
const std::string kPlugins = PREFENGINE_PLUGIN_DIR;
const std::string kUnrelated = std::string(PREFENGINE_TEST_UNRELATED_DIR) + "/libunrelated_aborts.so";

std::string test_plugin(const char* name) {
  return kTestPlugins + "/" + PluginLoader::plugin_file_name(PluginKind::kLoss, name);
}

void copy(const std::string& from, const std::string& to) {
  boost::filesystem::copy_file(from, to, boost::filesystem::copy_options::overwrite_existing);
}

bool contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

// A plugin directory as users make them: the good `throwing` loss plugin beside a library that
// aborts the process when loaded (under an unrelated name and under a loss plugin's name) and a
// text file named like a grader plugin.
std::string mixed_plugin_dir() {
  const std::string dir = testing::make_temp_dir("mixed_plugins");
  copy(test_plugin("throwing"), dir + "/libprefengine_loss_throwing.so");
  copy(kUnrelated, dir + "/libunrelated_aborts.so");
  copy(kUnrelated, dir + "/libprefengine_loss_aborts.so");
  testing::write_file(dir + "/libprefengine_grader_garbage.so", "not a shared library\n");
  return dir;
}

std::string load_error(const std::string& path, PluginKind kind) {
  PluginOptions options;
  try {
    PluginLoader::create_from_file(path, kind, options);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(PluginLoaderTest, WrongAbiVersionIsRefusedNamingFileAndVersions) {
  const std::string path = test_plugin("bad_abi");
  const std::string e = load_error(path, PluginKind::kLoss);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("ABI version mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find("returns " + std::to_string(kPluginAbiVersion + 41)), std::string::npos) << e;
  EXPECT_NE(e.find("needs " + std::to_string(kPluginAbiVersion)), std::string::npos) << e;
}

TEST(PluginLoaderTest, MissingFactoryIsRefusedNamingTheSymbol) {
  const std::string path = test_plugin("no_factory");
  const std::string e = load_error(path, PluginKind::kLoss);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("'prefengine_plugin_create' is missing"), std::string::npos) << e;
}

TEST(PluginLoaderTest, WrongKindIsRefused) {
  const std::string path = kPlugins + "/libprefengine_loss_dpo.so";
  const std::string e = load_error(path, PluginKind::kModel);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("is a loss plugin, a model plugin was expected"), std::string::npos) << e;
}

TEST(PluginLoaderTest, MissingFileIsNamed) {
  const std::string e = load_error("/nonexistent/dir/x.so", PluginKind::kLoss);
  EXPECT_EQ(e, "/nonexistent/dir/x.so: plugin library not found");
}

TEST(PluginLoaderTest, NonLibraryFileIsAClearError) {
  const std::string e = load_error(std::string(PREFENGINE_SOURCE_DIR) + "/CMakeLists.txt", PluginKind::kLoss);
  EXPECT_NE(e.find("CMakeLists.txt: cannot load plugin library"), std::string::npos) << e;
}

TEST(PluginLoaderTest, ScanFindsBuiltPluginsAndReportsBrokenOnes) {
  PluginLoader loader({kTestPlugins});
  std::vector<std::string> problems;
  const auto files = loader.scan(&problems);
  bool dpo = false, toy = false, throwing = false;
  for (const auto& f : files) {
    if (f.name == "dpo" && f.kind == PluginKind::kLoss) dpo = true;
    if (f.name == "toy_mlp" && f.kind == PluginKind::kModel) toy = true;
    if (f.name == "throwing") throwing = true;
    EXPECT_EQ(f.abi_version, kPluginAbiVersion);
  }
  EXPECT_TRUE(dpo && toy && throwing);
  ASSERT_EQ(problems.size(), 3u);  // bad_abi, no_factory and other_torch, in file name order
  EXPECT_EQ(problems[0].rfind(test_plugin("bad_abi") + ": ", 0), 0u) << problems[0];
  EXPECT_EQ(problems[1].rfind(test_plugin("no_factory") + ": ", 0), 0u) << problems[1];
  EXPECT_EQ(problems[2].rfind(test_plugin("other_torch") + ": ", 0), 0u) << problems[2];
}

TEST(PluginLoaderTest, OtherLibTorchIsRefusedNamingFileAndBothVersions) {
  // the SDK reports the LibTorch it was built with: here, the headers this test compiles against
  EXPECT_EQ(std::string(torch_version()), TORCH_VERSION);
  const std::string path = test_plugin("other_torch");
  const std::string e = load_error(path, PluginKind::kLoss);
  EXPECT_EQ(e, path + ": plugin built against LibTorch 0.9.9-test, this engine uses LibTorch " +
                   std::string(TORCH_VERSION) + " (rebuild the plugin against the engine's LibTorch)");
}

TEST(PluginLoaderTest, PluginFileNameHasKindAndName) {
  EXPECT_EQ(PluginLoader::plugin_file_name(PluginKind::kLoss, "dpo"), "libprefengine_loss_dpo.so");
  EXPECT_EQ(PluginLoader::plugin_file_name(PluginKind::kModel, "toy_mlp"), "libprefengine_model_toy_mlp.so");
  EXPECT_EQ(PluginLoader::plugin_file_name(PluginKind::kGrader, "math"), "libprefengine_grader_math.so");
}

TEST(PluginLoaderTest, FindsThePluginByNameBesideBrokenLibraries) {
  const std::string dir = mixed_plugin_dir();
  PluginLoader loader({dir});
  // Names come from file names alone: listing opens nothing (the aborting library would kill us).
  const auto losses = loader.names(PluginKind::kLoss);
  EXPECT_TRUE(contains(losses, "throwing") && contains(losses, "aborts") && contains(losses, "dpo"));
  EXPECT_FALSE(contains(losses, "unrelated_aborts"));
  EXPECT_TRUE(contains(loader.names(PluginKind::kGrader), "garbage"));
  PluginOptions options;
  auto loss = std::dynamic_pointer_cast<PairwiseLoss>(loader.create_loss("throwing", options));
  ASSERT_NE(loss, nullptr);
  PairwiseBatch b;
  b.chosen_logps = at::tensor({-1.0});
  b.rejected_logps = at::tensor({-2.0});
  b.ref_chosen_logps = at::tensor({-1.5});
  b.ref_rejected_logps = at::tensor({-1.5});
  // the throwing plugin is DPO with beta 0.1 until asked to fail
  EXPECT_NEAR(loss->pairwise(b).loss.item<double>(), std::log1p(std::exp(-0.1)), 1e-6);
}

TEST(PluginLoaderTest, MissingPluginNamesTheFoldersSearchedAndTheAvailableNames) {
  const std::string dir = mixed_plugin_dir();
  PluginLoader loader({dir});
  PluginOptions options;
  try {
    loader.create_loss("throwin", options);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("unknown loss plugin 'throwin' (did you mean 'throwing'? available: ", 0), 0u) << m;
    EXPECT_NE(m.find("aborts, "), std::string::npos) << m;
    EXPECT_NE(m.find(", dpo, "), std::string::npos) << m;
    EXPECT_NE(m.find("; looked for libprefengine_loss_throwin.so in: " + dir + ", "), std::string::npos) << m;
    EXPECT_NE(m.find(kPlugins), std::string::npos) << m;
    EXPECT_EQ(m.find("garbage"), std::string::npos) << m;  // a grader, not a loss
  }
}

TEST(PluginLoaderTest, BrokenPluginAskedForIsNamed) {
  const std::string dir = mixed_plugin_dir();
  PluginLoader loader({dir});
  PluginOptions options;
  try {
    loader.create_grader("garbage", options);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string path = dir + "/libprefengine_grader_garbage.so";
    EXPECT_EQ(std::string(e.what()).rfind(path + ": cannot load plugin library: ", 0), 0u) << e.what();
  }
}

TEST(PluginLoaderTest, FileNameAndPluginNameMustAgree) {
  const std::string dir = testing::make_temp_dir("renamed_plugin");
  copy(test_plugin("throwing"), dir + "/libprefengine_loss_renamed.so");
  PluginLoader loader({dir});
  PluginOptions options;
  try {
    loader.create_loss("renamed", options);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              dir + "/libprefengine_loss_renamed.so: the file name says plugin 'renamed', the library's "
                    "prefengine_plugin_info() says 'throwing' (the name in PREFENGINE_PLUGIN and "
                    "prefengine_add_plugin must agree)");
  }
  std::vector<std::string> problems;
  PluginLoader only_renamed({dir});
  for (const auto& f : only_renamed.scan(&problems)) EXPECT_NE(f.name, "renamed");
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("the file name says loss plugin 'renamed', the library says loss plugin 'throwing'"),
            std::string::npos) << problems[0];
}

TEST(PluginLoaderTest, NameThatIsNotAFileNameIsRefused) {
  PluginLoader loader({kTestPlugins});
  PluginOptions options;
  EXPECT_THROW(loader.create_loss("../test_plugins/libprefengine_loss_throwing", options), std::invalid_argument);
  EXPECT_THROW(loader.create_loss("", options), std::invalid_argument);
}

TEST(PluginLoaderTest, UnknownNameListsKnownPluginsAndNearest) {
  PluginLoader loader;
  PluginOptions options;
  try {
    loader.create_loss("dop", options);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("unknown loss plugin 'dop' (did you mean 'dpo'? available: ", 0), 0u)
        << e.what();
  }
}

TEST(PluginLoaderTest, UnreadOptionIsRejectedWithNearestKey) {
  PluginLoader loader;
  PluginOptions options("stages[1].loss");
  options.set_scalar("beta", "0.2");
  options.set_scalar("label_smoothin", "0.1");
  try {
    loader.create_loss("dpo", options);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("stages[1].loss.label_smoothin: unknown key (did you mean 'label_smoothing'?"),
              std::string::npos) << e.what();
  }
}

TEST(PluginLoaderTest, ObjectOutlivesLoaderAndKeepsItsLibrary) {
  std::shared_ptr<PairwiseLoss> loss;
  {
    PluginLoader loader;
    PluginOptions options;
    options.set_scalar("beta", "0.5");
    loss = std::dynamic_pointer_cast<PairwiseLoss>(loader.create_loss("dpo", options));
  }
  ASSERT_NE(loss, nullptr);
  // The loader is gone; the object's code must still be mapped.
  PairwiseBatch b;
  b.chosen_logps = at::tensor({-1.0});
  b.rejected_logps = at::tensor({-2.0});
  b.ref_chosen_logps = at::tensor({-1.5});
  b.ref_rejected_logps = at::tensor({-1.5});
  const double z = 0.5 * ((-1.0 + 1.5) - (-2.0 + 1.5));
  EXPECT_NEAR(loss->pairwise(b).loss.item<double>(), std::log1p(std::exp(-z)), 1e-6);
}

TEST(PluginLoaderTest, ModelPluginIsATorchModuleAcrossTheBoundary) {
  PluginLoader loader;
  PluginOptions options;
  options.set_scalar("hidden", "8");
  std::shared_ptr<Model> model = loader.create_model("toy_mlp", options);
  EXPECT_EQ(model->vocab_size(), 10);
  EXPECT_NE(dynamic_cast<SingleTokenResponses*>(model.get()), nullptr);
  // 3 linear layers: (14*8+8) + (8*8+8) + (8*10+10)
  int64_t count = 0;
  for (const auto& p : model->parameters()) count += p.numel();
  EXPECT_EQ(count, 14 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10);
  EXPECT_NE(dynamic_cast<torch::nn::Module*>(model.get()), nullptr);
}

// engine/plugins/plugin_factory.h: the experiment's model and a stage's loss from their config
// blocks; an unknown plugin name is reported at the block's `plugin:` key.
TEST(PluginFactoryTest, CreatesTheConfiguredPluginsAndPlacesAnUnknownName) {
  ExperimentConfig config = parse_experiment(
      "name: f\n"
      "model: {plugin: toy_mlp, prompts: 4, responses: 7, hidden: 8}\n"
      "stages:\n"
      "  - name: pref\n"
      "    kind: pairwise\n"
      "    loss: {plugin: dpo, beta: 0.5}\n"
      "    data: {path: configs/toy/data/pairs.jsonl}\n"
      "    steps: 5\n",
      "exp.yaml");
  const PluginLoader loader(config.plugin_paths);
  EXPECT_EQ(create_model(loader, config)->vocab_size(), 7);
  // The block is not consumed: a second model (a PPO reference, say) comes from the same config.
  EXPECT_EQ(create_model(loader, config)->vocab_size(), 7);
  EXPECT_NE(dynamic_cast<PairwiseLoss*>(create_loss(loader, config.stages.at(0)).get()), nullptr);
  config.model_plugin = "toy_mpl";
  try {
    create_model(loader, config);
    ADD_FAILURE() << "an unknown model plugin was created";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("exp.yaml:2:", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.plugin: unknown model plugin 'toy_mpl'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace prefengine
