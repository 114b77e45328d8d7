// The emulator builder actor (model owner): on request builds the emulator of
// an offline design from the backbone (uniform layer drop, optional
// distillation on public text, optional int8 weights), writes it once, and
// serves it in checksummed chunks; a client resumes a broken download by
// asking for the bytes it lacks. Reports each emulator's standalone utility.
#pragma once

#include <map>
#include <memory>

#include "data/batch_source.hpp"
#include "models/emulator.hpp"
#include "protocols/file_transfer.hpp"
#include "protocols/interfaces.hpp"
#include "strategies/emulator_distillation.hpp"

namespace gt {

struct EmulatorRecipe {
  EmulatorOptions emulator;
  DistillOptions distill;
};

struct BuilderParts {
  Segments full;                                  // the model owner's full model (frozen)
  std::map<std::string, EmulatorRecipe> recipes;  // strategy -> how its emulator is built
  std::shared_ptr<const BatchSource>
      public_data;  // distillation text (may be null: no distillation)
  std::string work_dir;
  int64_t chunk_bytes = kDefaultChunkBytes;
  std::shared_ptr<WireStats> stats;  // as the builder sees the wire
};

// What the builder measured about an emulator it built (IP leakage).
struct EmulatorReport {
  std::string strategy, path, description;
  int64_t file_bytes = 0;
  double distill_mse = 0;
};

struct BuilderActorState {
  BuilderParts parts;
  std::map<std::string, std::unique_ptr<FileSource>> sources;  // strategy -> its emulator file
  std::map<std::string, FileSource*> by_id;                    // transfer id -> source
  std::shared_ptr<std::vector<EmulatorReport>> reports;        // read by the app after the run
  static inline const char* name = "gt.emulator_builder";
};

emulator_builder_actor::behavior_type emulator_builder_behavior(
    emulator_builder_actor::stateful_pointer<BuilderActorState> self, BuilderParts parts,
    std::shared_ptr<std::vector<EmulatorReport>> reports);

}  // namespace gt
