// The server's half of split learning: it owns the frozen backbone and, per
// client session, the graph from a received a1 to the a2 it sent back, until
// the client's g2 arrives. Plain class: the server actor only moves messages.
#pragma once

#include <map>
#include <string>

#include "models/segments.hpp"
#include "privacy/quantization.hpp"
#include "protocols/messages.hpp"

namespace gt {

struct ServerSession {
  std::string client_name, strategy;
  QuantScheme a2_scheme = QuantScheme::none, g1_scheme = QuantScheme::none;  // what it sends back
  int64_t last_step = -1;
  // Between a training forward and its backward:
  torch::Tensor a1, a2;  // a1 is a leaf requiring grad; a2 its image through the backbone
  int64_t pending_step = -1;
};

class SplitServer {
 public:
  SplitServer(Segments seg, std::string name);

  // Checks the client's model matches ours; returns the new session. Throws ProtocolError.
  SessionAccept open(const SessionHello& hello);
  ForwardReply forward(const ForwardRequest& request);
  BackwardReply backward(const BackwardRequest& request);
  void close(uint64_t session);

  size_t num_sessions() const { return sessions_.size(); }
  bool has_session(uint64_t session) const { return sessions_.count(session) != 0; }

 private:
  ServerSession& session(const Header& h);

  Segments seg_;
  std::string name_;
  uint64_t next_session_ = 1;
  std::map<uint64_t, ServerSession> sessions_;
};

}  // namespace gt
