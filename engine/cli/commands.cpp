#include "engine/cli/commands.h"
#include "engine/cli/export_command.h"
#include "engine/cli/generate_command.h"
#include "engine/cli/runtime_defaults.h"
#include "engine/cli/usage.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <link.h>

#include <boost/filesystem.hpp>
#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include "engine/config/experiment_config.h"
#include "engine/grading/grade_file.h"
#include "engine/dist/communicator.h"
#include "engine/dist/local_launcher.h"
#include "engine/metrics/error_line.h"
#include "engine/metrics/logging.h"
#include "prefengine/plugin_loader.h"
#include "engine/report/html_report.h"
#include "engine/report/run_summary.h"
#include "engine/sweep/sweep_plan.h"
#include "engine/sweep/sweep_runner.h"
#include "engine/sweep/sweep_worker.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/interrupt.h"
#include "engine/train/run_directory.h"
#include "prefengine/grader.h"

namespace prefengine::cli {
namespace {

namespace po = boost::program_options;

struct Parsed {
  po::variables_map vars;
  bool help = false;
};

Parsed parse(const std::string& command, const po::options_description& visible,
             const po::positional_options_description& positional,
             const std::vector<std::string>& args, const char* synopsis) {
  po::options_description all("options");
  all.add(visible);
  all.add_options()("help,h", "show this help");
  all.add_options()("log-level", po::value<std::string>()->default_value("info"),
                    "trace, debug, info, warn, error or off");
  Parsed parsed;
  po::store(po::command_line_parser(args).options(all).positional(positional).run(), parsed.vars);
  if (parsed.vars.count("help")) {
    std::cout << "usage: prefengine " << command << " " << synopsis << "\n\n" << all << "\n";
    parsed.help = true;
    return parsed;
  }
  po::notify(parsed.vars);
  setup_logging(parsed.vars["log-level"].as<std::string>());
  return parsed;
}

void add_experiment_options(po::options_description& options, bool required = true) {
  auto* experiment = po::value<std::string>();
  if (required) experiment->required();
  options.add_options()("experiment", experiment, "the experiment YAML file")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "override a config value: --set key.path=value (stages by index or name: "
      "stages.dpo.loss.beta=0.2); repeatable");
}

int run_command(const std::vector<std::string>& args) {
  // Hidden: a sweep's worker process (engine/sweep/sweep_worker.h), started by the sweep runner.
  if (!args.empty() && args[0] == "--sweep-worker") {
    const bool level_given = args.size() == 3 && args[1] == "--log-level";
    if (args.size() != 1 && !level_given) throw std::invalid_argument("run --sweep-worker: expected [--log-level LEVEL]");
    return run_sweep_worker(level_given ? args[2] : "warn");
  }
  po::options_description options("run");
  add_experiment_options(options, /*required=*/false);
  options.add_options()("output,o", po::value<std::string>(),
                        "the run directory (default: a fresh runs/<name>-<time>)")(
      "overwrite", po::bool_switch(), "replace an existing --output directory")(
      "nproc", po::value<int>()->default_value(1),
      "start N data-parallel ranks on this host (torchrun-style; RANK etc. are set for each)")(
      "master-port", po::value<int>()->default_value(0),
      "with --nproc: the rendezvous port on 127.0.0.1 (default: a free port)")(
      "jobs,j", po::value<int64_t>()->default_value(0),
      "sweeps: child processes at once (0 = the number of cores)")(
      "runs-per-process", po::value<int64_t>()->default_value(0),
      "sweeps: runs one child process runs one after another (1 = a process per run; 0 = auto: "
      "toy_mlp runs share their processes, up to 50 each; other models get one each)")(
      "resume", po::value<std::string>(),
      "continue RUN_DIR from its latest checkpoint, with its config.yaml (run from the same working directory)");
  po::positional_options_description positional;
  positional.add("experiment", 1);
  Parsed p = parse("run", options, positional, args,
                   "EXP.yaml [--set key=value ...] [--output DIR] [--nproc N [--master-port P]] | --resume RUN_DIR");
  if (p.help) return 0;
  const int nproc = p.vars["nproc"].as<int>();
  const int master_port = p.vars["master-port"].as<int>();
  if (nproc < 1 || nproc > 1024) throw std::invalid_argument("--nproc: expected 1..1024, got " + std::to_string(nproc));
  if (master_port < 0 || master_port > 65535) {
    throw std::invalid_argument("--master-port: expected 0..65535, got " + std::to_string(master_port));
  }
  const DistributedEnv env = DistributedEnv::from_environment();
  // --nproc N: the same command for every rank, without the launcher's own options.
  auto launch_ranks = [&](const std::string& directory) {
    if (env.world_size > 1) throw std::invalid_argument("--nproc: this process is already rank " + std::to_string(env.rank) + " of a launched run");
    LaunchOptions launch;
    launch.nproc = nproc;
    launch.master_port = master_port;
    launch.env.emplace_back("PREFENGINE_RUN_DIRECTORY", directory);
    launch.args.push_back("run");
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--nproc" || a == "--master-port") {
        ++i;
        continue;
      }
      if (a.rfind("--nproc=", 0) == 0 || a.rfind("--master-port=", 0) == 0) continue;
      launch.args.push_back(a);
    }
    return launch_local_ranks(launch);  // 0, or 128 + the signal that interrupted the ranks
  };
  if (p.vars.count("resume")) {
    if (p.vars.count("experiment") || p.vars.count("set") || p.vars.count("output")) {
      throw std::invalid_argument("run --resume RUN_DIR takes the run's own config.yaml: drop EXP.yaml, --set and --output");
    }
    install_interrupt_handlers();  // SIGINT/SIGTERM stop at a step boundary (engine/train/interrupt.h)
    const std::string directory = p.vars["resume"].as<std::string>();
    if (!boost::filesystem::is_directory(directory)) {
      throw std::invalid_argument("--resume " + directory + ": no such run directory");
    }
    const char* rank_of = std::getenv("PREFENGINE_RUN_DIRECTORY");
    std::unique_ptr<RunDirectoryLock> lock;  // a live run is not resumed twice (held by a launcher for its ranks)
    if (!(rank_of && *rank_of) && env.rank == 0) lock = std::make_unique<RunDirectoryLock>(directory);
    ExperimentConfig config = load_experiment(directory + "/config.yaml");
    if (nproc > 1) {
      const int status = launch_ranks(directory);
      if (status == 0) std::cout << directory << "\n";
      return status;
    }
    ExperimentRunner runner(config, directory);
    runner.set_resume(true);
    runner.run();
    if (env.rank == 0) std::cout << directory << "\n";
    return 0;
  }
  if (!p.vars.count("experiment")) throw po::required_option("experiment");
  const auto overrides = p.vars.count("set") ? p.vars["set"].as<std::vector<std::string>>()
                                             : std::vector<std::string>{};
  if (is_sweep_file(p.vars["experiment"].as<std::string>())) {  // sweep: / seeds: (engine/sweep)
    SweepOptions sweep;
    if (p.vars.count("output")) sweep.directory = p.vars["output"].as<std::string>();
    sweep.overwrite = p.vars["overwrite"].as<bool>();
    sweep.jobs = p.vars["jobs"].as<int64_t>();
    sweep.runs_per_process = p.vars["runs-per-process"].as<int64_t>();
    sweep.executable = boost::filesystem::read_symlink("/proc/self/exe").string();
    const SweepResult result = run_sweep(plan_sweep(p.vars["experiment"].as<std::string>(), overrides), sweep);
    std::cout << result.directory << "\n";
    if (result.interrupted_by != 0) return 128 + result.interrupted_by;
    return result.failed == 0 ? 0 : 1;
  }
  install_interrupt_handlers();  // (a sweep's runner installs its own)
  ExperimentConfig config = load_experiment(p.vars["experiment"].as<std::string>(), overrides);
  // One preparation for checking and running: plugins, model and data are built and read once,
  // before the run directory exists (a bad config leaves nothing behind).
  ExperimentRunner runner(config, "");
  runner.validate();
  throw_if_interrupted("while checking the experiment; no run directory was created");
  // A rank started by `--nproc` gets the directory its launcher prepared; ranks started by another
  // launcher (torchrun, srun) leave it to rank 0, the only one that writes.
  const char* launched_into = std::getenv("PREFENGINE_RUN_DIRECTORY");
  std::string directory;
  std::unique_ptr<RunDirectoryLock> lock;  // held until this process (or its ranks) end
  if (launched_into && *launched_into) {
    directory = launched_into;
  } else if (env.rank == 0) {
    RunDirectoryOptions dir_options;
    if (p.vars.count("output")) dir_options.output = p.vars["output"].as<std::string>();
    dir_options.overwrite = p.vars["overwrite"].as<bool>();
    dir_options.inputs = experiment_inputs(config.source, config.resolved_yaml);
    directory = prepare_run_directory(config.name, dir_options);
    lock = std::make_unique<RunDirectoryLock>(directory);
  }
  if (nproc > 1) {
    const int status = launch_ranks(directory);
    if (status == 0) std::cout << directory << "\n";
    return status;
  }
  runner.set_directory(directory);
  runner.run();
  if (!(launched_into && *launched_into) && env.rank == 0) std::cout << directory << "\n";
  return 0;
}

int validate_command(const std::vector<std::string>& args) {
  po::options_description options("validate");
  add_experiment_options(options);
  po::positional_options_description positional;
  positional.add("experiment", 1);
  Parsed p = parse("validate", options, positional, args, "EXP.yaml [--set key=value ...]");
  if (p.help) return 0;
  const auto overrides = p.vars.count("set") ? p.vars["set"].as<std::vector<std::string>>()
                                             : std::vector<std::string>{};
  const std::string path = p.vars["experiment"].as<std::string>();
  ExperimentConfig config = load_experiment(path, overrides);
  validate_experiment(config);
  std::cout << path << ": ok (" << config.stages.size() << " stages)\n";
  return 0;
}

int plugins_command(const std::vector<std::string>& args) {
  po::options_description options("plugins");
  options.add_options()("plugin-path", po::value<std::vector<std::string>>()->composing(),
                        "an extra directory to search; repeatable");
  po::positional_options_description positional;
  Parsed p = parse("plugins", options, positional, args, "[--plugin-path DIR ...]");
  if (p.help) return 0;
  std::vector<std::string> dirs;
  if (p.vars.count("plugin-path")) dirs = p.vars["plugin-path"].as<std::vector<std::string>>();
  PluginLoader loader(dirs);
  std::vector<std::string> problems;
  const auto files = loader.scan(&problems);
  std::printf("%-14s %-7s %-4s %s\n", "NAME", "KIND", "ABI", "FILE");
  for (const auto& f : files) {
    std::printf("%-14s %-7s %-4d %s\n", f.name.c_str(), plugin_kind_name(f.kind), f.abi_version, f.path.c_str());
  }
  for (const auto& problem : problems) std::printf("skipped: %s\n", problem.c_str());
  if (files.empty()) {
    std::string searched;
    for (const auto& d : loader.search_path()) searched += " " + d;
    std::printf("no plugins found; searched:%s\n", searched.c_str());
  }
  return 0;
}

int report_command(const std::vector<std::string>& args) {
  po::options_description options("report");
  options.add_options()("runs", po::value<std::vector<std::string>>()->required(), "run directories")(
      "output,o", po::value<std::string>()->default_value("report.html"),
      "the HTML file; summary.md and summary.csv go beside it")(
      "stage", po::value<std::string>()->default_value(""), "the stage to summarise (default: the last)")(
      "all-stages", po::bool_switch(), "plot every stage against the global step")(
      "metric", po::value<std::vector<std::string>>()->composing(),
      "one more metric to chart (e.g. grad_norm); a trailing * charts every metric with that prefix "
      "(e.g. 'pairs/*'); repeatable");
  po::positional_options_description positional;
  positional.add("runs", -1);
  Parsed p = parse("report", options, positional, args, "RUN_DIR... [--output FILE] [--stage NAME] [--metric NAME]...");
  if (p.help) return 0;
  const auto dirs = p.vars["runs"].as<std::vector<std::string>>();
  const std::string output = p.vars["output"].as<std::string>();
  ReportOptions report;
  report.stage = p.vars["stage"].as<std::string>();
  report.all_stages = p.vars["all-stages"].as<bool>();
  if (p.vars.count("metric")) report.extra_metrics = p.vars["metric"].as<std::vector<std::string>>();
  write_html_report(dirs, output, report);
  SummaryOptions summary;
  summary.stage = report.stage;
  std::string parent = boost::filesystem::path(output).parent_path().string();
  write_summary(dirs, parent.empty() ? "." : parent, summary);
  std::cout << "wrote " << output << " and the summary beside it\n";
  return 0;
}

int grade_command(const std::vector<std::string>& args) {
  po::options_description options("grade");
  options.add_options()("grader,g", po::value<std::string>()->required(), "the grader plugin: math, poem, slogan, ...")(
      "input,i", po::value<std::string>()->required(), "JSONL records with prompt, response and optional reference")(
      "output,o", po::value<std::string>(), "JSONL: each record with score, scores and reason (or error)")(
      "option", po::value<std::vector<std::string>>()->composing(),
      "a grader option key=value (e.g. tolerance=1e-6); repeatable")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(), "an extra plugin directory; repeatable")(
      "max-response-bytes", po::value<int64_t>()->default_value(65536),
      "a longer response is a per-record error (0 = no limit)");
  po::positional_options_description positional;
  Parsed p = parse("grade", options, positional, args, "--grader NAME --input FILE.jsonl [--output FILE.jsonl]");
  if (p.help) return 0;
  std::vector<std::string> dirs;
  if (p.vars.count("plugin-path")) dirs = p.vars["plugin-path"].as<std::vector<std::string>>();
  PluginLoader loader(dirs);
  PluginOptions grader_options("--option");
  if (p.vars.count("option")) {
    for (const auto& kv : p.vars["option"].as<std::vector<std::string>>()) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        throw std::invalid_argument("--option " + kv + ": expected key=value");
      }
      OptionEntry entry;
      const std::string value = kv.substr(eq + 1);
      if (value.size() >= 2 && value.front() == '[' && value.back() == ']') {
        entry.is_list = true;
        std::stringstream items(value.substr(1, value.size() - 2));
        for (std::string item; std::getline(items, item, ',');) {
          if (!item.empty()) entry.list.push_back(item);
        }
      } else {
        entry.scalar = value;
      }
      entry.location = "--option";
      grader_options.set(kv.substr(0, eq), entry);
    }
  }
  auto grader = loader.create_grader(p.vars["grader"].as<std::string>(), grader_options);
  std::optional<std::string> output;
  if (p.vars.count("output")) output = p.vars["output"].as<std::string>();
  const int64_t max_response = p.vars["max-response-bytes"].as<int64_t>();
  if (max_response < 0) {
    throw std::invalid_argument("--max-response-bytes: expected >= 0, got " + std::to_string(max_response));
  }
  GradeFileOptions file_options;
  file_options.max_response_bytes = static_cast<size_t>(max_response);
  // A line holds the response JSON-escaped (up to 6 bytes a byte) besides the other fields.
  const size_t line_bytes = 6 * file_options.max_response_bytes + 65536;
  if (max_response == 0) {
    file_options.max_line_bytes = 0;
  } else if (line_bytes > file_options.max_line_bytes) {
    file_options.max_line_bytes = line_bytes;
  }
  if (output) refuse_output_over_input(p.vars["input"].as<std::string>(), *output, "--output");
  const GradeSummary summary = grade_file(*grader, p.vars["input"].as<std::string>(), output, file_options);
  std::cout << format_grade_summary(summary);
  if (summary.graded == 0) {
    std::cerr << "error: no record of " << summary.records << " could be graded\n";
    return 1;
  }
  return 0;
}

// The loaded BLAS library (LibTorch's OpenBLAS), found among the process's shared objects.
std::string loaded_blas() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        const std::string name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        if (name.find("libopenblas") != std::string::npos || name.find("libblas.so") != std::string::npos) {
          auto* out = static_cast<std::string*>(data);
          if (out->empty() || name.find("libopenblas") != std::string::npos) *out = name;
        }
        return 0;
      },
      &found);
  return found.empty() ? "(none found)" : found;
}

// The runtime settings the launcher (or engine/cli/main.cpp's restart) may have given the process,
// as they are now; engine/cli/launcher.cpp prints the same lines without loading LibTorch.
std::string runtime_settings() { return runtime::runtime_settings_line() + "\nblas: " + loaded_blas() + "\n"; }

}  // namespace

int main_entry(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = args.front();
  if (is_top_level_help(command.c_str())) {
    std::cout << kUsage;
    return 0;
  }
  if (command == "--version") {
    std::cout << "prefengine " << PREFENGINE_VERSION << " (plugin ABI " << kPluginAbiVersion << ")\n"
              << runtime_settings();
    return 0;
  }
  args.erase(args.begin());
  const std::map<std::string, int (*)(const std::vector<std::string>&)> commands = {
      {"run", run_command}, {"validate", validate_command}, {"plugins", plugins_command}, {"report", report_command},
      {"grade", grade_command}, {"generate", generate_command}, {"export", export_command}};
  auto it = commands.find(command);
  try {
    if (it == commands.end()) {
      std::vector<std::string> names;
      for (const auto& [name, fn] : commands) names.push_back(name);
      throw std::invalid_argument("unknown command '" + command + "' (did you mean '" +
                                  nearest_name(command, names) + "'? see prefengine --help)");
    }
    return it->second(args);
  } catch (const Interrupted& e) {
    // One line, from rank 0 only; 128 + the signal, as a shell reports a process killed by it.
    const char* rank = std::getenv("RANK");
    if (rank == nullptr || std::string(rank) == "0") std::cerr << e.what() << "\n";
    return e.exit_status();
  } catch (const po::error& e) {
    std::cerr << "error: " << command << ": " << e.what() << " (see prefengine " << command << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    // Which rank said it, when several share one terminal.
    const char* world = std::getenv("WORLD_SIZE");
    const char* rank = std::getenv("RANK");
    const std::string who = world && rank && std::string(world) != "1" ? std::string("[rank ") + rank + "] " : "";
    // One line: LibTorch's backtrace (and any multi-line text) only at --log-level debug.
    if (has_backtrace(e) && spdlog::should_log(spdlog::level::debug)) spdlog::debug("full error: {}", e.what());
    const std::string line = error_line(e);
    std::cerr << "error: " << who << line << "\n";
    report_error_to_launcher(line);  // a rank of `--nproc`: which peer stopped, for the launcher
    return 1;
  } catch (...) {
    std::cerr << "error: " << command << ": an exception that is not a std::exception\n";
    return 1;
  }
}

void refuse_output_over_input(const std::string& input, const std::string& output, const char* option) {
  namespace fs = boost::filesystem;
  boost::system::error_code error;
  const bool same = fs::exists(output, error) ? fs::equivalent(input, output, error)
                                              : fs::weakly_canonical(output, error) == fs::weakly_canonical(input, error);
  if (same) {
    throw std::invalid_argument(std::string(option) + ": '" + output + "' is the input file; expected another path");
  }
}

}  // namespace prefengine::cli
