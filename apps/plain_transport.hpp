// Plaintext connections (loopback, or --insecure) with the message size limit in front of CAF's
// BASP, as tls_transport does over TLS: CAF 0.17's own scribe reads whatever length a peer's
// header announces, so a node would buffer a message of any size before anyone could refuse it.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

namespace gt::cli {

// caf::io::publish: serves `whom` (with interface `sigs`) on host:port in plaintext; returns the
// bound port. A peer whose next message (as BASP asks to read it) passes `max_message_bytes` is
// hung up on before it is read, and `on_too_large(peer "HOST:PORT", its size)` is called (on
// CAF's I/O thread: quick and thread-safe).
caf::expected<uint16_t> plain_publish(
    caf::actor_system& sys, const caf::strong_actor_ptr& whom, std::set<std::string> sigs,
    uint16_t port, const std::string& host, size_t max_message_bytes,
    std::function<void(const std::string& peer, size_t bytes)> on_too_large);

}  // namespace gt::cli
