// See plain_transport.hpp. CAF's extension point is the same as tls_transport.cpp's: a
// middleman actor of ours whose doorman makes our scribes, CAF's default scribe with a check
// where BASP says how much it reads next.
#include "apps/plain_transport.hpp"

#include <sys/socket.h>

#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor_impl.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/doorman_impl.hpp>
#include <caf/io/network/interfaces.hpp>
#include <caf/io/network/scribe_impl.hpp>
#include <memory>

namespace gt::cli {
namespace {

using default_mpx = caf::io::network::default_multiplexer;
using native_socket = caf::io::network::native_socket;
using TooLarge = std::function<void(const std::string&, size_t)>;

class LimitedScribe : public caf::io::network::scribe_impl {
 public:
  LimitedScribe(default_mpx& mpx, native_socket fd, size_t max_read,
                std::shared_ptr<const TooLarge> on_too_large)
      : scribe_impl(mpx, fd), max_read_(max_read), on_too_large_(std::move(on_too_large)) {}

  void configure_read(caf::io::receive_policy::config config) override {
    // BASP asks for the header, then for exactly the payload the header announced: a payload
    // over the limit is never read; the peer is hung up on instead.
    if (max_read_ > 0 && config.second > max_read_) {
      const auto addr = caf::io::network::remote_addr_of_fd(stream_.fd());
      const auto port = caf::io::network::remote_port_of_fd(stream_.fd());
      const auto peer = addr && port ? *addr + ":" + std::to_string(*port) : "an unknown peer";
      if (*on_too_large_) (*on_too_large_)(peer, config.second);
      ::shutdown(stream_.fd(), SHUT_RDWR);
      config.second = 1;
    }
    scribe_impl::configure_read(config);
  }

 private:
  size_t max_read_;
  std::shared_ptr<const TooLarge> on_too_large_;
};

class LimitedDoorman : public caf::io::network::doorman_impl {
 public:
  LimitedDoorman(default_mpx& mpx, native_socket fd, size_t max_read,
                 std::shared_ptr<const TooLarge> on_too_large)
      : doorman_impl(mpx, fd), max_read_(max_read), on_too_large_(std::move(on_too_large)) {}

  // As CAF's doorman_impl::new_connection, with our scribe.
  bool new_connection() override {
    if (detached()) return false;
    auto& mpx = acceptor_.backend();
    auto scribe = caf::make_counted<LimitedScribe>(mpx, acceptor_.accepted_socket(), max_read_,
                                                   on_too_large_);
    auto hdl = scribe->hdl();
    parent()->add_scribe(std::move(scribe));
    return doorman::new_connection(&mpx, hdl);
  }

 private:
  size_t max_read_;
  std::shared_ptr<const TooLarge> on_too_large_;
};

class LimitedMiddleman : public caf::io::middleman_actor_impl {
 public:
  LimitedMiddleman(caf::actor_config& cfg, caf::actor broker, size_t max_read,
                   TooLarge on_too_large)
      : middleman_actor_impl(cfg, std::move(broker)),
        max_read_(max_read),
        on_too_large_(std::make_shared<const TooLarge>(std::move(on_too_large))) {}

  const char* name() const override { return "gt::limited_plain_middleman"; }

 protected:
  caf::expected<caf::io::doorman_ptr> open(uint16_t port, const char* addr, bool reuse) override {
    auto fd = caf::io::network::new_tcp_acceptor_impl(port, addr, reuse);
    if (!fd) return std::move(fd.error());
    auto& mpx = static_cast<default_mpx&>(system().middleman().backend());
    return caf::make_counted<LimitedDoorman>(mpx, *fd, max_read_, on_too_large_);
  }

 private:
  size_t max_read_;
  std::shared_ptr<const TooLarge> on_too_large_;
};

}  // namespace

caf::expected<uint16_t> plain_publish(caf::actor_system& sys, const caf::strong_actor_ptr& whom,
                                      std::set<std::string> sigs, uint16_t port,
                                      const std::string& host, size_t max_message_bytes,
                                      TooLarge on_too_large) {
  if (!whom) return caf::sec::cannot_publish_invalid_actor;
  auto broker = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  auto mm = sys.spawn<LimitedMiddleman, caf::hidden>(std::move(broker), max_message_bytes,
                                                     std::move(on_too_large));
  caf::expected<uint16_t> result{caf::sec::runtime_error};
  caf::scoped_actor self{sys};
  self->request(mm, caf::infinite, caf::publish_atom::value, port, whom, std::move(sigs), host,
                true)
      .receive([&](uint16_t bound) { result = bound; },
               [&](caf::error& e) { result = std::move(e); });
  self->send_exit(mm, caf::exit_reason::user_shutdown);
  return result;
}

}  // namespace gt::cli
