// How `gtune node` talks to its peer: --tls-cert/--tls-key/--tls-ca (mutual TLS through CAF's
// OpenSSL module: each side shows a certificate and checks the other's against its CA) or
// plaintext, which is allowed on loopback and, with --insecure, elsewhere. The server node
// publishes with publish_server, a client node connects with connect_server.
#pragma once

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "apps/tls_transport.hpp"
#include "protocols/interfaces.hpp"

namespace gt::cli {

struct NetworkOptions {
  std::string tls_cert, tls_key, tls_ca;  // all three or none
  bool insecure = false;                  // plaintext beyond loopback
  // Set by a party that publishes (not an option): a peer whose next message would pass it is
  // hung up on before the message is read (0 = no limit), over TLS and in plaintext alike.
  // CAF's BASP reads a whole message before anyone can look at it; this is the transport's
  // check in front of it.
  size_t max_message_bytes = 0;

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

// The untyped halves of publish_party / connect_party (network_options.cpp).
uint16_t publish_plain_checked(caf::expected<uint16_t> bound, const std::string& role,
                               const std::string& host, uint16_t port);
// Plaintext with net.max_message_bytes checked where CAF reads (plain_transport.hpp): a peer
// hung up on is logged and passed to `on_refused` with category "too_large".
uint16_t publish_plain_limited(caf::actor_system& sys, const caf::strong_actor_ptr& party,
                               std::set<std::string> sigs, const std::string& role,
                               const NetworkOptions& net, const std::string& host, uint16_t port,
                               std::function<void(const HandshakeFailure&)> on_refused);
uint16_t publish_tls(caf::actor_system& sys, const caf::strong_actor_ptr& party,
                     std::set<std::string> sigs, const std::string& role, const NetworkOptions& net,
                     const std::string& host, uint16_t port,
                     std::function<void(const HandshakeFailure&)> on_refused);
caf::expected<caf::strong_actor_ptr> connect_plain_checked(
    caf::expected<caf::strong_actor_ptr> party, const std::string& role, const std::string& host,
    uint16_t port);
caf::expected<caf::strong_actor_ptr> connect_tls(caf::actor_system& sys,
                                                 const std::set<std::string>& ifs,
                                                 const std::string& role, const NetworkOptions& net,
                                                 const std::string& host, uint16_t port);

// A node's party (`role` in logs: "server", "builder"): publishes it on host:port (port 0: any
// free one) as `net` says, logs the mode, returns the bound port; gt::Error when it cannot
// listen. With TLS each peer refused in the handshake is logged as a warning, then passed to
// `on_refused` (may be empty; called on CAF's I/O thread, so quick and thread-safe).
template <class Handle>
uint16_t publish_party(const Handle& party, const std::string& role, const NetworkOptions& net,
                       const std::string& host, uint16_t port,
                       std::function<void(const HandshakeFailure&)> on_refused = {}) {
  auto& sys = party.home_system();
  if (!net.tls() && net.max_message_bytes == 0)
    return publish_plain_checked(caf::io::publish(party, port, host.c_str(), true), role, host,
                                 port);
  if (!net.tls())
    return publish_plain_limited(sys, caf::actor_cast<caf::strong_actor_ptr>(party),
                                 sys.message_types(party), role, net, host, port,
                                 std::move(on_refused));
  return publish_tls(sys, caf::actor_cast<caf::strong_actor_ptr>(party), sys.message_types(party),
                     role, net, host, port, std::move(on_refused));
}

// A client node's peer (the server, the emulator builder) at host:port, over TLS or plaintext
// as `net` says; may be called again to reconnect. Its errors carry a one-line explanation
// (connect_error_text), e.g. "TLS handshake failed: the server refused this client's
// certificate (...)".
template <class Handle>
caf::expected<Handle> connect_party(caf::actor_system& sys, const std::string& role,
                                    const NetworkOptions& net, const std::string& host,
                                    uint16_t port) {
  caf::expected<caf::strong_actor_ptr> ptr{caf::strong_actor_ptr{}};
  if (!net.tls()) {
    auto typed = sys.middleman().remote_actor<Handle>(host, port);
    ptr = connect_plain_checked(
        typed ? caf::expected<caf::strong_actor_ptr>{caf::actor_cast<caf::strong_actor_ptr>(*typed)}
              : caf::expected<caf::strong_actor_ptr>{typed.error()},
        role, host, port);
  } else {
    ptr = connect_tls(sys, sys.message_types<Handle>(), role, net, host, port);
  }
  if (!ptr) return std::move(ptr.error());
  return caf::actor_cast<Handle>(std::move(*ptr));
}

inline uint16_t publish_server(const server_actor& server, const NetworkOptions& net,
                               const std::string& host, uint16_t port,
                               std::function<void(const HandshakeFailure&)> on_refused = {}) {
  return publish_party(server, "server", net, host, port, std::move(on_refused));
}

inline caf::expected<server_actor> connect_server(caf::actor_system& sys, const NetworkOptions& net,
                                                  const std::string& host, uint16_t port) {
  return connect_party<server_actor>(sys, "server", net, host, port);
}

// The explanation an error of connect_server carries; CAF's rendering of any other error.
std::string connect_error_text(const caf::error& e);

}  // namespace gt::cli
