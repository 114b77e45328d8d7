// See client_transfers.hpp.
#include "actors/client_transfers.hpp"

#include "models/emulator.hpp"
#include "protocols/file_transfer.hpp"

namespace gt::client_detail {
namespace {

constexpr int kChunkAttempts = 5;

// A reply of the builder asked before it was lost and reached again comes too late to count.
bool stale(ClientSelf self, uint64_t generation) {
  return generation != self->state.builder_generation;
}

void fetch_chunks(ClientSelf self, std::shared_ptr<FileSink> sink, int failures,
                  std::function<void(const std::string&)> done) {
  auto& st = self->state;
  if (sink->done()) return done(sink->path());
  auto req = sink->next_request();
  self->request(st.parts.builder, kReplyTimeout, send_counted(self, req, "", "builder"))
      .then(
          [self, sink, done, generation = st.builder_generation](Encoded<ChunkReply>& enc) {
            if (stale(self, generation)) return;
            guarded(self, [&] {
              sink->accept(receive_counted(self, enc, "", "builder"));
              auto& st = self->state;
              if (st.parts.metrics)
                st.parts.metrics->set_transfer(st.plan.name, st.fetching, sink->received(),
                                               sink->total());
              fetch_chunks(self, sink, 0, done);
            });
          },
          [self, sink, failures, done, generation = st.builder_generation](caf::error& err) {
            if (stale(self, generation)) return;
            if (builder_gone(err) && self->state.parts.builder_reconnector)
              return builder_lost(self, "emulator transfer", err);
            // A lost chunk is asked for again; the bytes already on disk stay.
            if (failures + 1 >= kChunkAttempts)
              return fail(self, "emulator transfer: builder " + describe(err) + " (" +
                                    std::to_string(kChunkAttempts) + " attempts)");
            spdlog::warn("client {}: emulator chunk at {} failed ({}); retrying",
                         self->state.plan.name, sink->received(), describe(err));
            fetch_chunks(self, sink, failures + 1, done);
          });
}

}  // namespace

bool builder_gone(const caf::error& err) {
  return err == caf::sec::request_receiver_down || err == caf::sec::request_timeout;
}

// The builder's node went: the transfer in flight is dropped (its late replies ignored), the
// builder reached again, and the emulator asked for again; the download resumes from the
// bytes on disk (a builder restarted on its work directory offers the same file).
void builder_lost(ClientSelf self, const std::string& what, const caf::error& err) {
  auto& st = self->state;
  ++st.builder_generation;
  st.builder_down.reset();
  if (st.builder_reconnecting) return;  // its down message and a failed request both tell
  if (!st.parts.builder_reconnector)
    return fail(self, what + ": the emulator builder was lost (" + describe(err) + ")");
  spdlog::warn("client {}: lost the emulator builder ({}: {}); reconnecting", st.plan.name, what,
               describe(err));
  st.builder_reconnecting = true;
  self->request(st.parts.builder_reconnector, caf::infinite, reconnect_atom_v)
      .then(
          [self](caf::strong_actor_ptr& builder) {
            auto& st = self->state;
            st.builder_reconnecting = false;
            st.parts.builder = caf::actor_cast<emulator_builder_actor>(builder);
            self->monitor(st.parts.builder);
            if (st.parts.metrics) st.parts.metrics->add_reconnect(st.plan.name);
            spdlog::info("client {}: reached the emulator builder again", st.plan.name);
            // A copy: the transfer begun again replaces st.refetch while it runs.
            if (auto again = st.refetch) again();
          },
          [self, what](caf::error& e) {
            fail(self,
                 what + ": the emulator builder was lost and not reached again: " + describe(e));
          });
}

void fetch_emulator(ClientSelf self, const std::string& strategy,
                    std::function<void(Backbone)> done) {
  auto& st = self->state;
  if (!st.parts.builder) return fail(self, strategy + ": no emulator builder in this run");
  st.fetching = strategy;
  st.refetch = [self, strategy, done] { fetch_emulator(self, strategy, done); };
  if (st.builder_down) return builder_lost(self, "emulator request", *st.builder_down);
  const auto& seg = st.parts.model->seg;
  EmulatorRequest req;
  req.strategy = strategy;
  req.model_type = seg.cfg.model_type;
  req.num_layers = seg.cfg.num_layers;
  req.hidden_size = seg.cfg.hidden_size;
  req.n_in = seg.split.n_in;
  req.n_out = seg.split.n_out;
  self->request(st.parts.builder, kReplyTimeout, send_counted(self, req, "", "builder"))
      .then(
          [self, done, generation = st.builder_generation](Encoded<TransferOffer>& enc) {
            if (stale(self, generation)) return;
            guarded(self, [&] {
              auto& st = self->state;
              auto offer = receive_counted(self, enc, "", "builder");
              auto sink = std::make_shared<FileSink>(offer, st.plan.work_dir);
              spdlog::info("client {}: emulator {} ({}, {:.2f} MB){}", st.plan.name,
                           offer.transfer_id, offer.description, offer.total_bytes / 1e6,
                           sink->resumed_from() > 0
                               ? " resuming at " + std::to_string(sink->resumed_from()) + " bytes"
                               : "");
              fetch_chunks(self, sink, 0, [self, done](const std::string& path) {
                guarded(self, [&] {
                  auto& st = self->state;
                  st.refetch = nullptr;
                  done(load_emulator(path, st.parts.model->seg.cfg, st.plan.dtype).backbone);
                });
              });
            });
          },
          [self, generation = st.builder_generation](caf::error& err) {
            if (stale(self, generation)) return;
            if (builder_gone(err)) return builder_lost(self, "emulator request", err);
            fail(self, "emulator request: builder: " + describe(err));
          });
}

void upload_adapters(ClientSelf self, Next next) {
  auto& st = self->state;
  const auto fmt = st.parts.settings.uploads.at(st.strategy);
  auto up = make_adapter_upload(st.parts.model->seg, *st.parts.pretrained, fmt.delta, fmt.scheme);
  up.header = Header{kProtocolVersion, st.channel->session(), st.channel->steps_done()};
  auto values =
      reconstruct_upload(up, *st.parts.pretrained, trainable_adapters(st.parts.model->seg));
  ask_server<AdapterAck>(
      self, up, "", "adapter upload: server", [self, next] { upload_adapters(self, next); },
      [self, next, values](const AdapterAck& ack) {
        auto& st = self->state;
        assign_adapters(trainable_adapters(st.parts.model->seg), values);
        st.steps_since_upload = false;
        spdlog::info("client {}: {} adapter tensors ({} parameters) plugged into the full model",
                     st.plan.name, ack.tensors, ack.parameters);
        next();
      });
}

}  // namespace gt::client_detail
