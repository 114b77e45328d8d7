// How `gtune node` talks to its peer: --tls-cert/--tls-key/--tls-ca (mutual TLS through CAF's
// OpenSSL module: each side shows a certificate and checks the other's against its CA) or
// plaintext, which is allowed on loopback and, with --insecure, elsewhere. The server node
// publishes with publish_server, a client node connects with connect_server.
#pragma once

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "apps/tls_transport.hpp"
#include "protocols/interfaces.hpp"

namespace gt::cli {

struct NetworkOptions {
  std::string tls_cert, tls_key, tls_ca;  // all three or none
  bool insecure = false;                  // plaintext beyond loopback

  void add_to(CLI::App& cmd);
  bool tls() const { return !tls_cert.empty() || !tls_key.empty() || !tls_ca.empty(); }
  // Before binding or connecting to `host` (given with `option`, e.g. "--listen"): the TLS
  // options come all three or not at all, as readable PEM files (a certificate valid now, its
  // unencrypted key, at least one CA certificate); without them `host` must be loopback unless
  // --insecure. Throws gt::Error naming the option or the file.
  void check(const std::string& host, const std::string& option) const;
  // With TLS: loads CAF's OpenSSL module into `cfg` with the certificate, key and CA. Call on
  // the actor system's config before the system starts; nothing to do without TLS.
  void configure(caf::actor_system_config& cfg) const;
};

// Server node: publishes `server` on host:port (port 0: any free one) as `net` says, logs the
// mode, returns the bound port; gt::Error when it cannot listen. With TLS each peer refused in
// the handshake is logged as a warning, then passed to `on_refused` (may be empty; called on
// CAF's I/O thread, so quick and thread-safe: e.g. a metric).
uint16_t publish_server(const server_actor& server, const NetworkOptions& net,
                        const std::string& host, uint16_t port,
                        std::function<void(const HandshakeFailure&)> on_refused = {});

// Client node: the server node at host:port, over TLS or plaintext as `net` says; may be
// called again to reconnect. Its errors carry a one-line explanation (connect_error_text), e.g.
// "TLS handshake failed: the server refused this client's certificate (...)".
caf::expected<server_actor> connect_server(caf::actor_system& sys, const NetworkOptions& net,
                                           const std::string& host, uint16_t port);

// The explanation an error of connect_server carries; CAF's rendering of any other error.
std::string connect_error_text(const caf::error& e);

}  // namespace gt::cli
