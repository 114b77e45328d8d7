// See tls_transport.hpp. The scribe, doorman and middleman actor follow CAF 0.17.6's own
// (libcaf_openssl/src/middleman_actor.cpp); the one difference is the socket policy, which
// forwards to CAF's OpenSSL session and reports a handshake that fails.
#include "apps/tls_transport.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor_impl.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/doorman_impl.hpp>
#include <caf/io/network/interfaces.hpp>
#include <caf/io/network/stream_impl.hpp>
#include <caf/openssl/session.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

// caf::openssl::session keeps its SSL* private; the name check after the handshake needs it.
// An explicit instantiation may name a private member (C++17 [temp.spec]/6): this one hands the
// pointer-to-member to `ssl_of` below, and nothing else touches the session's internals.
namespace gt::cli {
namespace {
struct SessionSsl {
  using type = SSL* caf::openssl::session::*;
  friend type ssl_member(SessionSsl);
};
template <class Tag, typename Tag::type Member>
struct ExposeMember {
  friend typename Tag::type ssl_member(Tag) { return Member; }
};
}  // namespace
}  // namespace gt::cli
template struct gt::cli::ExposeMember<gt::cli::SessionSsl, &caf::openssl::session::ssl_>;

namespace gt::cli {
namespace {

// CAF 0.17 has no handshake timeout: a peer that connects and says nothing would hold its
// socket forever. Accepted connections still in their handshake are registered here; after
// kHandshakeTimeout a reaper thread shuts their socket down, so that CAF's loop sees it close.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

class HandshakeReaper {
 public:
  static HandshakeReaper& instance() {
    static auto* reaper = new HandshakeReaper;  // never destroyed: its thread outlives main
    return *reaper;
  }
  // `flag` is set before the socket is shut down; remove() before the socket is closed.
  void add(const void* key, caf::io::network::native_socket fd, std::atomic<bool>* flag) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_[key] = {fd, flag, std::chrono::steady_clock::now() + kHandshakeTimeout};
  }
  void remove(const void* key) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.erase(key);
  }

 private:
  struct Pending {
    caf::io::network::native_socket fd;
    std::atomic<bool>* timed_out;
    std::chrono::steady_clock::time_point deadline;
  };
  HandshakeReaper() {
    std::thread([this] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        std::lock_guard<std::mutex> lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        for (auto it = pending_.begin(); it != pending_.end();) {
          if (it->second.deadline > now) {
            ++it;
            continue;
          }
          it->second.timed_out->store(true);
          ::shutdown(it->second.fd, SHUT_RDWR);
          it = pending_.erase(it);
        }
      }
    }).detach();
  }
  std::mutex mutex_;
  std::map<const void*, Pending> pending_;
};

SSL* ssl_of(caf::openssl::session& session) {
  return session.*ssl_member(SessionSsl{});
}

// The DNS names and IP addresses a certificate's subject alternative names give.
std::string certificate_names(X509* cert) {
  std::string out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const auto* n = sk_GENERAL_NAME_value(names, i);
    std::string name;
    if (n->type == GEN_DNS) {
      name = reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName));
    } else if (n->type == GEN_IPADD) {
      char text[INET6_ADDRSTRLEN] = "";
      const auto len = ASN1_STRING_length(n->d.iPAddress);
      const int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : -1;
      if (family > 0) inet_ntop(family, ASN1_STRING_get0_data(n->d.iPAddress), text, sizeof text);
      name = text;
    }
    if (!name.empty()) out += (out.empty() ? "" : ", ") + name;
  }
  GENERAL_NAMES_free(names);
  return out.empty() ? "none" : out;
}

// Whether the peer's certificate is issued for `host` (an IP address or a DNS name), as a
// browser checks it; otherwise why not.
std::string name_mismatch(SSL* ssl, const std::string& host) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return "the server presented no certificate";
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  const bool ok = ip ? X509_check_ip_asc(cert, host.c_str(), 0) == 1
                     : X509_check_host(cert, host.data(), host.size(), 0, nullptr) == 1;
  if (ip) ASN1_OCTET_STRING_free(ip);
  std::string why;
  if (!ok) why = "its names are " + certificate_names(cert);
  X509_free(cert);
  return why;
}

using caf::io::network::native_socket;
using caf::io::network::rw_state;
using default_mpx = caf::io::network::default_multiplexer;

// An alert by which the peer says it refused our certificate.
bool refuses_certificate(int reason) {
  switch (reason) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

// OpenSSL's error queue of this thread, drained, as one failure. CAF's session leaves the queue
// untouched when it fails (it would only read it to log, and Debian's CAF logs nothing).
HandshakeFailure drain_ssl_errors(const std::string& peer) {
  HandshakeFailure f{peer, "closed", ""};
  bool first = true;
  const char* data = nullptr;
  int flags = 0;
  while (const auto e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (!first) continue;  // the first error is the cause; the rest is how it surfaced
    first = false;
    const auto reason = ERR_GET_REASON(e);
    if (const char* text = ERR_reason_error_string(e)) {
      f.detail = text;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      f.detail = buf;
    }
    if (data && *data && (flags & ERR_TXT_STRING)) f.detail += std::string(" (") + data + ")";
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
      f.category = "other";
    } else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      f.category = "untrusted_certificate";
    } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      f.category = "no_certificate";
    } else if (refuses_certificate(reason)) {
      f.category = "certificate_refused";
    } else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
               reason == SSL_R_PACKET_LENGTH_TOO_LONG || reason == SSL_R_UNKNOWN_PROTOCOL ||
               reason == SSL_R_UNSUPPORTED_PROTOCOL) {
      f.category = "not_tls";
    } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      f.category = "closed";
    } else {
      f.category = "other";
    }
  }
  return f;
}

std::string peer_of(native_socket fd) {
  const auto addr = caf::io::network::remote_addr_of_fd(fd);
  const auto port = caf::io::network::remote_port_of_fd(fd);
  if (!addr || !port) return "an unknown peer";
  return *addr + ":" + std::to_string(*port);
}

// caf::openssl::make_session, whose failure to start (an SSL context CAF cannot build, e.g. a
// certificate file gone since startup: CAF throws) or to shake hands at once (e.g. a plaintext
// hello) lands in `failure` instead.
caf::openssl::session_ptr start_session(caf::actor_system& sys, native_socket fd, bool accepted,
                                        HandshakeFailure& failure) {
  ERR_clear_error();
  try {
    auto session = caf::openssl::make_session(sys, fd, accepted);
    if (!session) failure = drain_ssl_errors(failure.peer);
    return session;
  } catch (const std::exception& e) {
    failure = drain_ssl_errors(failure.peer);
    failure.category = "other";
    failure.detail = e.what() + (failure.detail.empty() ? "" : " (" + failure.detail + ")");
    return nullptr;
  }
}

// CAF's ssl_policy plus a report of the first failure before the peer's first byte: no
// application data arrives before both sides have accepted the handshake (BASP has each side
// send first, so every healthy connection reads some), so a failure before it is the handshake's.
class ObservedTlsPolicy {
 public:
  // `expected_host`: the name or address this side connected to, which the server's
  // certificate must be issued for; "" on the accepting side.
  ObservedTlsPolicy(caf::openssl::session_ptr session, native_socket fd, std::string peer,
                    std::shared_ptr<const HandshakeObserver> observer, std::string expected_host)
      : session_(std::move(session)),
        peer_(std::move(peer)),
        observer_(std::move(observer)),
        expected_host_(std::move(expected_host)) {
    if (expected_host_.empty()) HandshakeReaper::instance().add(this, fd, &timed_out_);
  }
  ~ObservedTlsPolicy() { HandshakeReaper::instance().remove(this); }
  ObservedTlsPolicy(const ObservedTlsPolicy&) = delete;
  ObservedTlsPolicy& operator=(const ObservedTlsPolicy&) = delete;

  rw_state read_some(size_t& result, native_socket fd, void* buf, size_t len) {
    const auto state = session_->read_some(result, fd, buf, len);
    if (state == rw_state::success && result > 0 && !established_) {
      // The first bytes after the handshake: before CAF reads them, the server's name.
      if (!expected_host_.empty()) {
        if (auto why = name_mismatch(ssl_of(*session_), expected_host_); !why.empty()) {
          refuse({peer_, "wrong_name", why});
          return rw_state::failure;
        }
      }
      established_ = true;
      HandshakeReaper::instance().remove(this);
    }
    if (state == rw_state::failure) failed();
    return state;
  }

  rw_state write_some(size_t& result, native_socket fd, const void* buf, size_t len) {
    const auto state = session_->write_some(result, fd, buf, len);
    if (state == rw_state::failure) failed();
    return state;
  }

  bool must_read_more(native_socket fd, size_t threshold) {
    return session_->must_read_more(fd, threshold);
  }

 private:
  void failed() {
    auto failure = drain_ssl_errors(peer_);
    if (established_) return;
    if (timed_out_) {
      failure.category = "handshake_timeout";
      failure.detail.clear();
    }
    refuse(failure);
  }

  void refuse(const HandshakeFailure& failure) {
    HandshakeReaper::instance().remove(this);
    if (reported_) return;
    reported_ = true;
    if (*observer_) (*observer_)(failure);
  }

  caf::openssl::session_ptr session_;
  std::string peer_;
  std::shared_ptr<const HandshakeObserver> observer_;
  std::string expected_host_;
  std::atomic<bool> timed_out_{false};
  bool established_ = false, reported_ = false;
};

class ObservedScribe : public caf::io::scribe {
 public:
  ObservedScribe(default_mpx& mpx, native_socket fd, caf::openssl::session_ptr session,
                 std::string peer, std::shared_ptr<const HandshakeObserver> observer,
                 std::string expected_host = "", size_t max_read = 0)
      : scribe(caf::io::network::conn_hdl_from_socket(fd)),
        peer_(peer),
        observer_(observer),
        max_read_(max_read),
        stream_(mpx, fd, std::move(session), fd, std::move(peer), std::move(observer),
                std::move(expected_host)) {}

  void configure_read(caf::io::receive_policy::config config) override {
    // BASP asks for the header, then for exactly the payload the header announced: a payload
    // over the limit is never read, let alone buffered; the peer is hung up on instead.
    if (max_read_ > 0 && config.second > max_read_) {
      if (*observer_) (*observer_)({peer_, "too_large", std::to_string(config.second)});
      ::shutdown(stream_.fd(), SHUT_RDWR);
      config.second = 1;
    }
    stream_.configure_read(config);
    if (!launched_) launch();
  }
  void ack_writes(bool enable) override { stream_.ack_writes(enable); }
  std::vector<char>& wr_buf() override { return stream_.wr_buf(); }
  std::vector<char>& rd_buf() override { return stream_.rd_buf(); }
  void graceful_shutdown() override {
    stream_.graceful_shutdown();
    detach(&stream_.backend(), false);
  }
  void flush() override { stream_.flush(this); }
  std::string addr() const override {
    auto x = caf::io::network::remote_addr_of_fd(stream_.fd());
    return x ? *x : "";
  }
  uint16_t port() const override {
    auto x = caf::io::network::remote_port_of_fd(stream_.fd());
    return x ? *x : 0;
  }
  void add_to_loop() override { stream_.activate(this); }
  void remove_from_loop() override { stream_.passivate(); }

 private:
  void launch() {
    launched_ = true;
    stream_.start(this);
    // Schedules the socket for writing so that SSL_accept / SSL_connect go on even when the
    // broker has nothing to send yet (as CAF's own scribe does).
    stream_.force_empty_write(this);
  }

  bool launched_ = false;
  std::string peer_;
  std::shared_ptr<const HandshakeObserver> observer_;
  size_t max_read_;
  caf::io::network::stream_impl<ObservedTlsPolicy> stream_;
};

class ObservedDoorman : public caf::io::network::doorman_impl {
 public:
  ObservedDoorman(default_mpx& mpx, native_socket fd,
                  std::shared_ptr<const HandshakeObserver> observer, size_t max_read)
      : doorman_impl(mpx, fd), observer_(std::move(observer)), max_read_(max_read) {}

  bool new_connection() override {
    if (detached()) return false;  // the broker let go of us; the socket goes with the loop
    auto& mpx = acceptor_.backend();
    const auto fd = acceptor_.accepted_socket();
    caf::io::network::nonblocking(fd, true);
    HandshakeFailure failure{peer_of(fd), "", ""};
    auto session = start_session(parent()->system(), fd, true, failure);
    if (!session) {
      ::close(fd);  // CAF's own doorman leaks it here
      if (*observer_) (*observer_)(failure);
      return true;  // keep accepting
    }
    auto scribe = caf::make_counted<ObservedScribe>(
        mpx, fd, std::move(session), std::move(failure.peer), observer_, "", max_read_);
    auto hdl = scribe->hdl();
    parent()->add_scribe(std::move(scribe));
    return doorman::new_connection(&mpx, hdl);
  }

 private:
  std::shared_ptr<const HandshakeObserver> observer_;
  size_t max_read_;
};

class ObservedMiddleman : public caf::io::middleman_actor_impl {
 public:
  ObservedMiddleman(caf::actor_config& cfg, caf::actor broker, HandshakeObserver observer,
                    size_t max_read = 0)
      : middleman_actor_impl(cfg, std::move(broker)),
        observer_(std::make_shared<const HandshakeObserver>(std::move(observer))),
        max_read_(max_read) {}

  const char* name() const override { return "gt::observed_tls_middleman"; }

 protected:
  caf::expected<caf::io::scribe_ptr> connect(const std::string& host, uint16_t port) override {
    auto fd = caf::io::network::new_tcp_connection(host, port);
    if (!fd) return std::move(fd.error());
    caf::io::network::nonblocking(*fd, true);
    HandshakeFailure failure{host + ":" + std::to_string(port), "", ""};
    auto session = start_session(system(), *fd, false, failure);
    if (!session) {
      ::close(*fd);
      if (*observer_) (*observer_)(failure);
      return caf::sec::cannot_connect_to_node;
    }
    return caf::make_counted<ObservedScribe>(mpx(), *fd, std::move(session),
                                             std::move(failure.peer), observer_, host);
  }

  caf::expected<caf::io::doorman_ptr> open(uint16_t port, const char* addr, bool reuse) override {
    auto fd = caf::io::network::new_tcp_acceptor_impl(port, addr, reuse);
    if (!fd) return std::move(fd.error());
    return caf::make_counted<ObservedDoorman>(mpx(), *fd, observer_, max_read_);
  }

 private:
  default_mpx& mpx() { return static_cast<default_mpx&>(system().middleman().backend()); }

  std::shared_ptr<const HandshakeObserver> observer_;
  size_t max_read_;
};

// A middleman actor for one publish or connect: the doorman or scribe it makes lives on in
// CAF's BASP broker, so the actor is done once it has answered.
caf::io::middleman_actor spawn_middleman(caf::actor_system& sys, HandshakeObserver observer,
                                         size_t max_read = 0) {
  auto broker = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  return sys.spawn<ObservedMiddleman, caf::hidden>(std::move(broker), std::move(observer),
                                                   max_read);
}

}  // namespace

caf::expected<uint16_t> tls_publish(caf::actor_system& sys, const caf::strong_actor_ptr& whom,
                                    std::set<std::string> sigs, uint16_t port,
                                    const std::string& host, HandshakeObserver observer,
                                    size_t max_message_bytes) {
  if (!whom) return caf::sec::cannot_publish_invalid_actor;
  auto mm = spawn_middleman(sys, std::move(observer), max_message_bytes);
  caf::expected<uint16_t> result{caf::sec::runtime_error};
  caf::scoped_actor self{sys};
  self->request(mm, caf::infinite, caf::publish_atom::value, port, whom, std::move(sigs), host,
                true)
      .receive([&](uint16_t bound) { result = bound; },
               [&](caf::error& e) { result = std::move(e); });
  self->send_exit(mm, caf::exit_reason::user_shutdown);
  return result;
}

caf::expected<caf::strong_actor_ptr> tls_remote_actor(caf::actor_system& sys,
                                                      const std::set<std::string>& ifs,
                                                      const std::string& host, uint16_t port,
                                                      HandshakeObserver observer) {
  auto mm = spawn_middleman(sys, std::move(observer));
  caf::expected<caf::strong_actor_ptr> result{caf::sec::runtime_error};
  caf::scoped_actor self{sys};
  self->request(mm, caf::infinite, caf::connect_atom::value, host, port)
      .receive(
          [&](const caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& found) {
            if (!ptr)
              result = caf::sec::no_actor_published_at_port;
            else if (!sys.assignable(found, ifs))
              result = caf::sec::unexpected_actor_messaging_interface;
            else
              result = std::move(ptr);
          },
          [&](caf::error& e) { result = std::move(e); });
  self->send_exit(mm, caf::exit_reason::user_shutdown);
  return result;
}

}  // namespace gt::cli
