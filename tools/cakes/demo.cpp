// cakes demo: the main job on built-in data. For now it shows what the fused
// operation buys on the two reference splits.
#include "commands.h"

#include <iostream>

namespace cakes::cli {

void add_demo(CLI::App& app) {
  auto* demo = app.add_subcommand("demo", "run the demonstration on built-in data");
  auto threads = std::make_shared<int>(0);
  demo->add_option("--threads", *threads, "threads (0 = all cores)");
  demo->callback([threads] {
    for (const char* split :
         {"3x3x3:22,1x3x3:21,3x1x1:21", "1x3x3:32,3x1x1:32"}) {
      LayerBenchArgs args;
      args.split = split;
      args.threads = *threads;
      run_layer_bench(args);
      std::cout << "\n";
    }
  });
}

} // namespace cakes::cli
