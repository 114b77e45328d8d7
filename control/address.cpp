// See address.hpp.
#include "control/address.hpp"

#include <arpa/inet.h>

#include "common/error.hpp"

namespace gt {
namespace {

bool is_ipv4(const std::string& host) {
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

uint16_t parse_port(const std::string& digits, const std::string& what) {
  // All digits: stoul alone would take "80x" as 80, " 80" as 80 and "-1" as ULONG_MAX.
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos || std::stoul(digits) > 65535)
    throw error_at(what, "'" + digits + "' is not a port number (0-65535)");
  return static_cast<uint16_t>(std::stoul(digits));
}

}  // namespace

HostPort parse_host_port(const std::string& text, const std::string& what) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) throw error_at(what, "expected HOST:PORT, got '" + text + "'");
  HostPort hp;
  hp.host = text.substr(0, colon);
  if (hp.host != "localhost" && !is_ipv4(hp.host))
    throw error_at(what, "'" + hp.host + "' is not an IPv4 address or localhost");
  hp.port = parse_port(text.substr(colon + 1), what);
  return hp;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return false;
  return (ntohl(addr.s_addr) >> 24) == 127;
}

}  // namespace gt
