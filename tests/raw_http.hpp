// Raw HTTP over a TCP socket on 127.0.0.1, for tests that must send exactly the bytes they mean
// (malformed requests, a client that hangs up) and see exactly what the server answered.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace gt::test {

// A connected TCP socket to 127.0.0.1:port that gives up reading after 3 s.
inline int connect_raw(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

inline void send_all(int fd, const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const auto n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (e.g. after a 413); its answer still counts
    sent += static_cast<size_t>(n);
  }
}

inline std::string recv_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// Sends raw bytes, half-closes, returns all the server answered.
inline std::string raw_exchange(uint16_t port, const std::string& bytes) {
  const int fd = connect_raw(port);
  send_all(fd, bytes);
  shutdown(fd, SHUT_WR);
  auto out = recv_all(fd);
  close(fd);
  return out;
}

}  // namespace gt::test
