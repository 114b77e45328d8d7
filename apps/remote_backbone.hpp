// A session with a server node for generations (issue 18): hello, then each backbone step a
// GenerateRequest answered with a2, and a goodbye when it ends. Used by gtune generate and
// gtune serve with --connect.
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <string>

#include "apps/network_options.hpp"
#include "apps/run_plan.hpp"
#include "config/run_config.hpp"
#include "models/segments.hpp"
#include "monitoring/metrics.hpp"
#include "strategies/generation_client.hpp"

namespace gt::cli {

class RemoteBackbone {
 public:
  // Connects to the server node at `host_port` and opens a session for the model `seg`;
  // throws gt::Error saying why when it cannot.
  // `metrics` (may be null) counts the generation messages' bytes.
  RemoteBackbone(const std::string& host_port, const NetworkOptions& network, const RunConfig& cfg,
                 const Segments& seg, std::shared_ptr<Metrics> metrics = {});
  ~RemoteBackbone();  // says goodbye: the server drops the session
  RemoteBackbone(const RemoteBackbone&) = delete;
  RemoteBackbone& operator=(const RemoteBackbone&) = delete;

  // A generation's backbone steps; end() it when the generation is done. One at a time.
  GenerationClient generation();
  // Encoded bytes of every generation message so far, both ways.
  int64_t wire_bytes() const { return *wire_bytes_; }

 private:
  template <class Rep, class Req>
  Encoded<Rep> ask(const Encoded<Req>& msg);

  ActorConfig acfg_;
  caf::actor_system sys_;
  caf::scoped_actor self_;
  server_actor server_;
  std::shared_ptr<Metrics> metrics_;
  std::shared_ptr<int64_t> wire_bytes_ = std::make_shared<int64_t>(0);
  uint64_t session_ = 0;
  QuantScheme a1_scheme_ = QuantScheme::none;
};

}  // namespace gt::cli
