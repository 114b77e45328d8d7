// See network_options.hpp.
#include "apps/network_options.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <caf/io/all.hpp>
#include <caf/openssl/manager.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "apps/plain_transport.hpp"
#include "common/error.hpp"
#include "control/address.hpp"

namespace gt::cli {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

File open_option_file(const std::string& option, const std::string& path) {
  File f{std::fopen(path.c_str(), "rb")};
  if (!f) throw Error(option + " " + path + ": cannot read it (" + std::strerror(errno) + ")");
  return f;
}

// No passphrase prompts: an encrypted key fails to load instead of asking the terminal.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string when(const ASN1_TIME* t) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{BIO_new(BIO_s_mem()), BIO_free};
  ASN1_TIME_print(bio.get(), t);
  char* data = nullptr;
  const auto n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// A PEM certificate valid now, the unencrypted PEM key that belongs to it, a PEM CA file.
void check_tls_files(const NetworkOptions& o) {
  ERR_clear_error();
  std::unique_ptr<X509, X509Free> cert{PEM_read_X509(
      open_option_file("--tls-cert", o.tls_cert).get(), nullptr, no_passphrase, nullptr)};
  if (!cert) throw Error("--tls-cert " + o.tls_cert + ": not a PEM certificate");
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0)
    throw Error("--tls-cert " + o.tls_cert + ": expired on " +
                when(X509_get0_notAfter(cert.get())));
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0)
    throw Error("--tls-cert " + o.tls_cert + ": not valid before " +
                when(X509_get0_notBefore(cert.get())));
  std::unique_ptr<EVP_PKEY, KeyFree> key{PEM_read_PrivateKey(
      open_option_file("--tls-key", o.tls_key).get(), nullptr, no_passphrase, nullptr)};
  if (!key)
    throw Error("--tls-key " + o.tls_key +
                ": not an unencrypted PEM private key (keys with a passphrase are not supported)");
  if (X509_check_private_key(cert.get(), key.get()) != 1)
    throw Error("--tls-key " + o.tls_key + ": not the key of --tls-cert " + o.tls_cert);
  std::unique_ptr<X509, X509Free> ca{
      PEM_read_X509(open_option_file("--tls-ca", o.tls_ca).get(), nullptr, no_passphrase, nullptr)};
  if (!ca) throw Error("--tls-ca " + o.tls_ca + ": holds no PEM certificate");
  ERR_clear_error();
}

// Client side: what a failed handshake means, from this client's point of view.
std::string client_explanation(const HandshakeFailure& f, const NetworkOptions& net) {
  std::string why;
  if (f.category == "untrusted_certificate")
    why = "the server's certificate is not signed by --tls-ca " + net.tls_ca +
          " (or it expired, or is not a server certificate)";
  else if (f.category == "no_certificate")
    why = "the server presented no certificate";
  else if (f.category == "wrong_name")
    return "TLS: the server's certificate is not issued for the address connected to (" + f.peer +
           "): " + f.detail + " (connect by a name or address its certificate gives)";
  else if (f.category == "certificate_refused")
    why = "the server refused this client's certificate (is --tls-cert " + net.tls_cert +
          " signed by the CA the server trusts?)";
  else if (f.category == "not_tls")
    why = "the server does not speak TLS (was it started without --tls-cert/--tls-key/--tls-ca?)";
  else if (f.category == "closed")
    why =
        "the server closed the connection (does the server require TLS? is --tls-cert signed "
        "by the CA the server trusts?)";
  else
    why = "is the server's certificate signed by --tls-ca? does the server require TLS?";
  if (!f.detail.empty()) why += "; OpenSSL: " + f.detail;
  return "TLS handshake failed: " + why;
}

// Server side: what refusing `f.peer` means, from this server's point of view.
std::string server_explanation(const HandshakeFailure& f, const NetworkOptions& net) {
  std::string why;
  if (f.category == "untrusted_certificate")
    why = "its certificate is not signed by --tls-ca " + net.tls_ca +
          " (or it expired, or is not a client certificate)";
  else if (f.category == "no_certificate")
    why = "it presented no certificate";
  else if (f.category == "certificate_refused")
    why = "it refused this server's certificate (is --tls-cert " + net.tls_cert +
          " signed by the CA the client trusts?)";
  else if (f.category == "not_tls")
    why = "it does not speak TLS (a client node without --tls-cert/--tls-key/--tls-ca?)";
  else if (f.category == "closed")
    why = "it closed the connection (a client without TLS, or one that gave up)";
  else if (f.category == "handshake_timeout")
    why = "it did not finish the TLS handshake in 10 s (its connection was closed)";
  else
    why = "the handshake failed";
  if (!f.detail.empty()) why += "; OpenSSL: " + f.detail;
  return why;
}

caf::error explained(const std::string& text) {
  return caf::make_error(caf::sec::cannot_connect_to_node, text);
}

}  // namespace

void NetworkOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--tls-cert", tls_cert,
                 "PEM certificate this node shows its peer (TLS; with --tls-key and --tls-ca)");
  cmd.add_option("--tls-key", tls_key, "PEM private key of --tls-cert (unencrypted)");
  cmd.add_option("--tls-ca", tls_ca,
                 "PEM CA certificate(s) the peer's certificate must be signed by; the peer is "
                 "refused otherwise");
  cmd.add_flag("--insecure", insecure,
               "allow plaintext on a non-loopback address (a trusted network only)");
}

void NetworkOptions::check(const std::string& host, const std::string& option) const {
  if (tls()) {
    if (insecure) throw Error("--insecure and --tls-cert/--tls-key/--tls-ca exclude each other");
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string&>{"--tls-cert", tls_cert},
          {"--tls-key", tls_key},
          {"--tls-ca", tls_ca}})
      if (value.empty())
        throw Error(std::string(name) +
                    " is missing: TLS needs --tls-cert, --tls-key and --tls-ca together");
    check_tls_files(*this);
    return;
  }
  if (is_loopback(host) || insecure) return;
  throw Error(option + " " + (host.empty() ? "(any address)" : host) +
              ": not a loopback address, and plaintext is for loopback only; pass "
              "--tls-cert/--tls-key/--tls-ca (scripts/make-test-certs makes test ones), or "
              "--insecure on a trusted network");
}

void NetworkOptions::configure(caf::actor_system_config& cfg) const {
  if (!tls()) return;
  namespace fs = std::filesystem;
  cfg.load<caf::openssl::manager>();
  cfg.openssl_certificate = fs::absolute(tls_cert).string();
  cfg.openssl_key = fs::absolute(tls_key).string();
  cfg.openssl_cafile = fs::absolute(tls_ca).string();
}

uint16_t publish_plain_checked(caf::expected<uint16_t> bound, const std::string& role,
                               const std::string& host, uint16_t port) {
  if (!bound)
    throw Error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                caf::to_string(bound.error()));
  if (is_loopback(host))
    spdlog::info("{}: listening on {}:{} (plaintext, loopback)", role, host, *bound);
  else
    spdlog::warn(
        "{}: listening on {}:{} (plaintext, --insecure: anyone who reaches this port can "
        "use the {} and read the traffic)",
        role, host, *bound, role);
  return *bound;
}

namespace {

void log_too_large(const std::string& role, const std::string& peer, const std::string& bytes,
                   size_t limit) {
  spdlog::warn(
      "{}: hung up on the peer at {}: its next message is {} bytes, over the {} this node "
      "accepts (server.max_message_mb)",
      role, peer, bytes, limit);
}

}  // namespace

uint16_t publish_plain_limited(caf::actor_system& sys, const caf::strong_actor_ptr& party,
                               std::set<std::string> sigs, const std::string& role,
                               const NetworkOptions& net, const std::string& host, uint16_t port,
                               std::function<void(const HandshakeFailure&)> on_refused) {
  auto on_too_large = [role, limit = net.max_message_bytes, on_refused](const std::string& peer,
                                                                        size_t bytes) {
    log_too_large(role, peer, std::to_string(bytes), limit);
    if (on_refused) on_refused({peer, "too_large", std::to_string(bytes)});
  };
  return publish_plain_checked(
      plain_publish(sys, party, std::move(sigs), port, host, net.max_message_bytes, on_too_large),
      role, host, port);
}

uint16_t publish_tls(caf::actor_system& sys, const caf::strong_actor_ptr& party,
                     std::set<std::string> sigs, const std::string& role, const NetworkOptions& net,
                     const std::string& host, uint16_t port,
                     std::function<void(const HandshakeFailure&)> on_refused) {
  auto observer = [net, on_refused, role](const HandshakeFailure& f) {
    if (f.category == "too_large")
      log_too_large(role, f.peer, f.detail, net.max_message_bytes);
    else
      spdlog::warn("{}: refused the peer at {}: TLS handshake failed: {}", role, f.peer,
                   server_explanation(f, net));
    if (on_refused) on_refused(f);
  };
  auto bound =
      tls_publish(sys, party, std::move(sigs), port, host, observer, net.max_message_bytes);
  if (!bound)
    throw Error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                caf::to_string(bound.error()));
  spdlog::info("{}: listening on {}:{} (TLS, peers must present a certificate signed by {})", role,
               host, *bound, net.tls_ca);
  return *bound;
}

caf::expected<caf::strong_actor_ptr> connect_plain_checked(
    caf::expected<caf::strong_actor_ptr> party, const std::string& role, const std::string& host,
    uint16_t port) {
  if (!party && party.error() == caf::sec::disconnect_during_handshake)
    return explained("the connection closed during the handshake (does the " + role +
                     " require TLS? then pass --tls-cert/--tls-key/--tls-ca)");
  if (party && !is_loopback(host))
    spdlog::warn("connected to the {} at {}:{} in plaintext (--insecure)", role, host, port);
  return party;
}

caf::expected<caf::strong_actor_ptr> connect_tls(caf::actor_system& sys,
                                                 const std::set<std::string>& ifs,
                                                 const std::string& role, const NetworkOptions& net,
                                                 const std::string& host, uint16_t port) {
  // The observer runs on CAF's I/O thread before the connect answers.
  struct Seen {
    std::mutex mutex;
    std::optional<HandshakeFailure> failure;
  };
  auto seen = std::make_shared<Seen>();
  auto observer = [seen](const HandshakeFailure& f) {
    std::lock_guard<std::mutex> lock{seen->mutex};
    if (!seen->failure) seen->failure = f;
  };
  auto ptr = tls_remote_actor(sys, ifs, host, port, observer);
  if (ptr) {
    spdlog::info("connected to the {} at {}:{} over TLS (its certificate is signed by {})", role,
                 host, port, net.tls_ca);
    return ptr;
  }
  std::lock_guard<std::mutex> lock{seen->mutex};
  if (seen->failure) return explained(client_explanation(*seen->failure, net));
  if (ptr.error() == caf::sec::disconnect_during_handshake)
    return explained("TLS handshake failed (is the " + role +
                     "'s certificate signed by --tls-ca? does the " + role + " require TLS?)");
  return std::move(ptr.error());
}

std::string connect_error_text(const caf::error& e) {
  const auto& ctx = e.context();
  if (e.category() == caf::atom("system") && ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return caf::to_string(e);
}

}  // namespace gt::cli
