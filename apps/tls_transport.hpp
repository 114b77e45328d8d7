// TLS connections between nodes whose failed handshakes are observable. CAF 0.17's
// caf::openssl::publish / remote_actor run the handshake inside CAF's I/O loop and drop its
// outcome: the server learns nothing, the client gets "disconnect_during_handshake". These do
// the same through a middleman actor of ours (CAF's extension point io::middleman_actor_impl)
// whose sockets wrap CAF's own OpenSSL session (caf::openssl::make_session: the certificate,
// key and CA come from the actor system's config, caf::openssl::manager must be loaded) and
// report each handshake that fails, with OpenSSL's reason.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

namespace gt::cli {

// A TLS handshake that failed, as OpenSSL saw it on this side.
struct HandshakeFailure {
  std::string peer;  // the other side, "HOST:PORT"
  // untrusted_certificate: the peer's certificate does not verify against our CA;
  // no_certificate: the peer showed none; certificate_refused: the peer refused ours (an
  // alert); not_tls: the peer does not speak TLS; closed: the peer hung up mid-handshake;
  // handshake_timeout: the peer did not finish the handshake within 10 s (accepting side);
  // too_large: after the handshake, its next message passes the limit (detail: its size);
  // wrong_name: the server's certificate is not issued for the name or address connected to;
  // other: anything else (detail says what).
  std::string category;
  std::string detail;  // OpenSSL's reason, e.g. "certificate verify failed (unable to get
                       // local issuer certificate)"; empty when OpenSSL gave none
};

// Called on CAF's I/O thread: must be quick and thread-safe.
using HandshakeObserver = std::function<void(const HandshakeFailure&)>;

// caf::openssl::publish: serves `whom` (with interface `sigs`) on host:port over TLS; returns
// the bound port. Every accepted connection whose handshake fails is reported to `observer`.
// A peer whose next message (as BASP asks to read it) passes `max_message_bytes` (0 = no limit)
// is hung up on before it is read, and reported with category "too_large", detail its size.
caf::expected<uint16_t> tls_publish(caf::actor_system& sys, const caf::strong_actor_ptr& whom,
                                    std::set<std::string> sigs, uint16_t port,
                                    const std::string& host, HandshakeObserver observer,
                                    size_t max_message_bytes = 0);

// caf::openssl::remote_actor: connects to the actor published at host:port over TLS and checks
// that it has the interface `ifs`. A failed handshake is reported to `observer` before this
// returns its error.
caf::expected<caf::strong_actor_ptr> tls_remote_actor(caf::actor_system& sys,
                                                      const std::set<std::string>& ifs,
                                                      const std::string& host, uint16_t port,
                                                      HandshakeObserver observer);

}  // namespace gt::cli
