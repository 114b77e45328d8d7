// gtune: the GuardedTuning command line.
#include <c10/util/Exception.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "apps/commands.hpp"
#include "common/error.hpp"

int main(int argc, char** argv) {
  // Logs go to stderr so that stdout carries only results.
  spdlog::set_default_logger(spdlog::stderr_color_mt("gtune"));
  CLI::App app{"gtune: privacy-preserving fine-tuning of LLMs (GuardedTuning)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gtune 0.1.0");
  gt::cli::add_simulate(app);
  gt::cli::add_experiment(app);
  gt::cli::add_audit(app);
  gt::cli::add_generate(app);
  gt::cli::add_serve(app);
  gt::cli::add_export(app);
  gt::cli::add_node(app);
  gt::cli::add_verify(app);
  gt::cli::add_eval_ppl(app);
  gt::cli::add_ctl(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const gt::cli::ExitStatus& s) {
    return s.code;
  } catch (const gt::Error& e) {
    std::fprintf(stderr, "gtune: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "gtune: tensor library error: %s\n", e.what_without_backtrace());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gtune: unexpected failure: %s\n", e.what());
    return 3;
  }
  return 0;
}
