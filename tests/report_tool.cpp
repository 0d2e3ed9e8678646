// prefengine_report_tool [--output FILE] [--summary-dir DIR] [--stage NAME] [--all-stages]
// RUN_DIR... Writes the HTML report (default report.html) and, with --summary-dir, summary.md and
// summary.csv. A stand-in for `prefengine report` until the CLI wires the same functions.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "engine/report/html_report.h"
#include "engine/report/run_summary.h"

int main(int argc, char** argv) {
  std::string output = "report.html";
  std::string summary_dir;
  prefengine::ReportOptions options;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--output") {
        output = value();
      } else if (arg == "--summary-dir") {
        summary_dir = value();
      } else if (arg == "--stage") {
        options.stage = value();
      } else if (arg == "--all-stages") {
        options.all_stages = true;
      } else if (arg == "--help" || arg == "-h") {
        std::cout
            << "usage: " << argv[0]
            << " [--output FILE] [--summary-dir DIR] [--stage NAME] [--all-stages] RUN_DIR...\n";
        return 0;
      } else if (!arg.empty() && arg[0] == '-') {
        throw std::invalid_argument(
            "unknown option " + arg +
            " (known: --output, --summary-dir, --stage, --all-stages, --help)");
      } else {
        dirs.push_back(arg);
      }
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 2;
    }
  }
  if (dirs.empty()) {
    std::cerr << "error: no run directories given\n";
    return 2;
  }
  try {
    prefengine::write_html_report(dirs, output, options);
    if (!summary_dir.empty()) {
      prefengine::SummaryOptions summary;
      summary.stage = options.stage;
      prefengine::write_summary(dirs, summary_dir, summary);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  std::cout << "wrote " << output << "\n";
  return 0;
}
