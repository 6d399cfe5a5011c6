#include <Python.h>

#include <boost/version.hpp>

#include <cstdio>

#include "cli/commands.hpp"

namespace fluxlit::cli {

void add_version_command(CLI::App& app, int& exit_status) {
  auto* command =
      app.add_subcommand("version", "Print FluxLit's version and the versions it was built with.");
  command->callback([&exit_status] {
    std::printf("fluxlit %s\npython %s (linked)\nboost %d.%d.%d\n", FLUXLIT_VERSION, PY_VERSION,
                BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
    exit_status = 0;
  });
}

}  // namespace fluxlit::cli
