// The Boost.DLL loader: version, symbol, kind and file errors name the file; objects keep their
// library loaded. The plugin factory: an experiment's model and a stage's loss from their blocks.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "engine/config/experiment_config.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/plugins/plugin_loader.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

const std::string kTestPlugins = PREFENGINE_TEST_PLUGIN_DIR;
const std::string kPlugins = PREFENGINE_PLUGIN_DIR;

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
  const std::string path = kTestPlugins + "/bad_abi.so";
  const std::string e = load_error(path, PluginKind::kLoss);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("ABI version mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find("returns " + std::to_string(kPluginAbiVersion + 41)), std::string::npos) << e;
  EXPECT_NE(e.find("needs " + std::to_string(kPluginAbiVersion)), std::string::npos) << e;
}

TEST(PluginLoaderTest, MissingFactoryIsRefusedNamingTheSymbol) {
  const std::string path = kTestPlugins + "/no_factory.so";
  const std::string e = load_error(path, PluginKind::kLoss);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("'prefengine_plugin_create' is missing"), std::string::npos) << e;
}

TEST(PluginLoaderTest, WrongKindIsRefused) {
  const std::string path = kPlugins + "/dpo.so";
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
  ASSERT_EQ(problems.size(), 2u);  // bad_abi and no_factory
}

TEST(PluginLoaderTest, UnknownNameListsKnownPluginsAndNearest) {
  PluginLoader loader;
  PluginOptions options;
  try {
    loader.create_loss("dop", options);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown loss plugin 'dop' (did you mean 'dpo'?"), std::string::npos) << e.what();
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
