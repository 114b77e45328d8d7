// Between a client strategy and the wire: turns the strategy's tensors into
// protocol messages (with the session, step and quantization) and the
// server's replies back into tensors, validating their shapes. The strategy
// can be replaced between steps; the session, step count and model stay.
#pragma once

#include <memory>
#include <variant>

#include "protocols/compression.hpp"
#include "protocols/messages.hpp"
#include "strategies/client_strategy.hpp"

namespace gt {

// A pipelined step's forward requests, one per micro-batch in row order: all sent at once.
using ForwardRequests = std::vector<ForwardRequest>;
// Nothing to send now: a pipelined step waits for more of the server's g1 chunks.
struct AwaitReplies {};

// What the client does next: send a message (or a pipelined step's messages) to the server,
// wait for more replies, or the step is done. Unpipelined steps never give the last two.
using Outgoing =
    std::variant<ForwardRequest, BackwardRequest, StepOutcome, ForwardRequests, AwaitReplies>;

class ClientChannel {
 public:
  ClientChannel(std::shared_ptr<ClientModel> model, std::unique_ptr<ClientStrategy> strategy);

  // Opens a session, or (session already set) updates its terms for the current strategy.
  SessionHello hello(const std::string& client_name) const;
  Outgoing begin_step(const StepInput& in);
  // Replies are taken over: their tensors become the strategy's without a copy. In a
  // pipelined step the a2 chunks must come in order (one server serves its mailbox in order);
  // g1 chunks may come in any order.
  Outgoing on_reply(ForwardReply reply);
  Outgoing on_reply(BackwardReply reply);
  ForwardRequest eval_request(const LmBatch& batch);
  std::pair<double, int64_t> eval_loss(ForwardReply reply);

  // Only between steps (no step in flight).
  void set_strategy(std::unique_ptr<ClientStrategy> strategy);
  // Forgets the step in flight (its server is gone); the step is then begun again.
  void abort_step() {
    in_flight_ = false;
    micro_.clear();
  }
  // A run resumed from a checkpoint continues its step count.
  void resume_at(int64_t steps_done) { step_ = steps_done; }
  ClientStrategy& strategy() { return *strategy_; }
  const ClientModel& model() const { return *model_; }
  std::shared_ptr<ClientModel> shared_model() const { return model_; }

  void set_session(uint64_t session) { session_ = session; }
  uint64_t session() const { return session_; }
  // How messages to the server are encoded, and (through the hello) its replies.
  void set_compression(Compression c) { compression_ = c; }
  Compression compression() const { return compression_; }
  int64_t steps_done() const { return step_; }
  bool step_in_flight() const { return in_flight_; }

 private:
  Header header() const { return Header{kProtocolVersion, session_, step_}; }
  Outgoing send(ClientAction action);
  // A training a1 in row chunks (micro-batches), one request each.
  ForwardRequests pipeline(const ActivationsUp& up, int64_t chunks);
  // The chunk a pipelined reply names, checked against the step in flight.
  size_t micro_of(const Header& h, const char* kind) const;
  torch::Tensor a2_of(ForwardReply&& reply) const;

  std::shared_ptr<ClientModel> model_;
  std::unique_ptr<ClientStrategy> strategy_;
  uint64_t session_ = 0;
  Compression compression_ = Compression::none;
  int64_t step_ = 0;
  bool in_flight_ = false;
  std::vector<int64_t> shape_;  // (B, T, C) of the request in flight
  torch::Tensor mask_;          // (B, T) of the step in flight: padded positions stay home
  // A pipelined step in flight (empty otherwise): each micro-batch's first row and rows; the
  // next a2 expected; the g1 chunks received.
  struct Micro {
    int64_t first_row = 0, rows = 0;
    torch::Tensor g1;
  };
  std::vector<Micro> micro_;
  size_t next_a2_ = 0, g1_received_ = 0;
  LmBatch eval_batch_;
};

}  // namespace gt
