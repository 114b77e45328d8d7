// See emulator_builder.hpp.
#include "actors/emulator_builder.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace gt {
namespace {

using BuilderSelf = emulator_builder_actor::stateful_pointer<BuilderActorState>;

std::string describe_recipe(const std::vector<int64_t>& kept, const EmulatorRecipe& r,
                            const Segments& full) {
  std::string layers;
  for (auto k : kept) layers += (layers.empty() ? "" : ",") + std::to_string(k + full.split.n_in);
  return std::to_string(kept.size()) + " of " + std::to_string(full.backbone->blocks.size()) +
         " backbone layers (" + layers + "), " + (r.emulator.int8_weights ? "int8" : "fp32") +
         " weights" +
         (r.distill.steps > 0 ? ", distilled " + std::to_string(r.distill.steps) + " steps" : "");
}

// Builds (once) the emulator file of `strategy`.
FileSource& source_for(BuilderSelf self, const std::string& strategy) {
  auto& st = self->state;
  if (auto it = st.sources.find(strategy); it != st.sources.end()) return *it->second;
  auto recipe = st.parts.recipes.find(strategy);
  if (recipe == st.parts.recipes.end())
    throw ProtocolError("emulator_request: no emulator recipe for strategy '" + strategy + "'");
  const auto& r = recipe->second;
  const auto& full = st.parts.full;
  auto kept = emulator_layers(static_cast<int64_t>(full.backbone->blocks.size()), r.emulator);
  auto emulator = build_emulator(full, r.emulator);
  EmulatorReport report;
  report.strategy = strategy;
  if (r.distill.steps > 0 && st.parts.public_data) {
    spdlog::info("emulator builder: distilling the {} emulator for {} steps", strategy,
                 r.distill.steps);
    report.distill_mse = distill_emulator(emulator, full, *st.parts.public_data, r.distill);
  }
  std::filesystem::create_directories(st.parts.work_dir);
  report.path = st.parts.work_dir + "/emulator-" + strategy + ".safetensors";
  save_emulator(report.path, emulator, full, kept, r.emulator.int8_weights);
  report.description = describe_recipe(kept, r, full);
  auto source = std::make_unique<FileSource>(report.path, report.description, st.parts.chunk_bytes);
  report.file_bytes = source->offer().total_bytes;
  spdlog::info("emulator builder: {} emulator ready: {}, {:.2f} MB", strategy, report.description,
               report.file_bytes / 1e6);
  if (st.reports) st.reports->push_back(report);
  auto& ref = *source;
  st.by_id[source->offer().transfer_id] = source.get();
  st.sources[strategy] = std::move(source);
  return ref;
}

template <class Req, class Rep, class Handle>
caf::result<Encoded<Rep>> serve(BuilderSelf self, const Encoded<Req>& msg, Handle&& handle) {
  auto& st = self->state;
  try {
    auto req = decode(msg);
    auto out = encode(handle(req));
    const std::string link = "session" + std::to_string(req.header.session) + "-builder";
    st.parts.stats->add(link, "up", message_kind<Req>(), static_cast<int64_t>(msg.bytes.size()));
    st.parts.stats->add(link, "down", message_kind<Rep>(), static_cast<int64_t>(out.bytes.size()));
    return out;
  } catch (const ProtocolError& e) {
    spdlog::warn("emulator builder: rejected {}: {}", message_kind<Req>(), e.what());
    return make_wire_error(wire_errc::rejected, e.what());
  } catch (const std::exception& e) {
    spdlog::error("emulator builder: failed on {}: {}", message_kind<Req>(), e.what());
    return make_wire_error(wire_errc::internal, e.what());
  }
}

}  // namespace

emulator_builder_actor::behavior_type emulator_builder_behavior(
    BuilderSelf self, BuilderParts parts, std::shared_ptr<std::vector<EmulatorReport>> reports) {
  self->state.parts = std::move(parts);
  self->state.reports = std::move(reports);
  return {
      [self](Encoded<EmulatorRequest>& msg) -> caf::result<Encoded<TransferOffer>> {
        return serve<EmulatorRequest, TransferOffer>(self, msg, [&](const EmulatorRequest& req) {
          const auto& full = self->state.parts.full;
          if (req.model_type != full.cfg.model_type || req.num_layers != full.cfg.num_layers ||
              req.hidden_size != full.cfg.hidden_size || req.n_in != full.split.n_in ||
              req.n_out != full.split.n_out)
            throw ProtocolError("emulator_request: the client's model or cut (" + req.model_type +
                                ", " + std::to_string(req.num_layers) +
                                " layers, n_in=" + std::to_string(req.n_in) +
                                ", n_out=" + std::to_string(req.n_out) + ") is not this builder's");
          auto offer = source_for(self, req.strategy).offer();
          offer.header = req.header;
          return offer;
        });
      },
      [self](Encoded<ChunkRequest>& msg) -> caf::result<Encoded<ChunkReply>> {
        return serve<ChunkRequest, ChunkReply>(self, msg, [&](const ChunkRequest& req) {
          auto it = self->state.by_id.find(req.transfer_id);
          if (it == self->state.by_id.end())
            throw ProtocolError("chunk_request: unknown transfer '" + req.transfer_id + "'");
          return it->second->chunk(req);
        });
      },
  };
}

}  // namespace gt
