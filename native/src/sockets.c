/*
 * What the proxy's native parts (tcpAcceptor, udpForwarder, the relay) share about sockets: an
 * address argument, a port bound with the failing port in the error, a close with reset, a
 * monotonic clock, a grown fd table. Limits: IPv4 and IPv6 addresses as text, no names; fds < 2^24.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cnmkit.h"

int cnmkit_address_arg(napi_env env, napi_value v, struct sockaddr_storage *sa, socklen_t *len) {
  char address[64];
  size_t alen = 0;
  memset(sa, 0, sizeof *sa);
  if (napi_get_value_string_utf8(env, v, address, sizeof address, &alen) == napi_ok) {
    if (inet_pton(AF_INET, address, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
      sa->ss_family = AF_INET;
      *len = sizeof(struct sockaddr_in);
      return 0;
    }
    if (inet_pton(AF_INET6, address, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
      sa->ss_family = AF_INET6;
      *len = sizeof(struct sockaddr_in6);
      return 0;
    }
  }
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "address is not an IPv4 or IPv6 address");
  return -1;
}

void cnmkit_set_port(struct sockaddr_storage *sa, int port) {
  if (sa->ss_family == AF_INET) ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
  else ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

int cnmkit_bind_port(const struct sockaddr_storage *base, socklen_t len, int port, int type, bool v6only, const char **syscall) {
  struct sockaddr_storage sa = *base;
  cnmkit_set_port(&sa, port);
  *syscall = "socket";
  int fd = socket(sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, v6 = v6only ? 1 : 0, err = 0;
  if (fd >= CNMKIT_FD_LIMIT) err = EMFILE;
  else if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) { err = errno; *syscall = "setsockopt"; }
  else if (sa.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) != 0) { err = errno; *syscall = "setsockopt"; }
  else if (bind(fd, (struct sockaddr *)&sa, len) != 0) { err = errno; *syscall = "bind"; }
  if (err == 0) return fd;
  close(fd);
  return -err;
}

void cnmkit_throw_port_error(napi_env env, int err, const char *syscall, int port) {
  napi_value e = cnmkit_errno_error(env, err, syscall, NULL), v;
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, e, "port", v);
  napi_throw(env, e);
}

int64_t cnmkit_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cnmkit_close_reset(int fd) {
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

void cnmkit_grow_fd_table(int fd, int slots) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < 2) return;
  int top = lim.rlim_cur < (rlim_t)slots ? (int)lim.rlim_cur - 1 : slots - 1;
  if (top <= fd) return;
  /* The lowest free slot from top on: never an fd in use (dup3 onto top would silently close
   * an fd open there, e.g. a proxied connection's once the table is that full). */
  int grown = fcntl(fd, F_DUPFD_CLOEXEC, top);
  if (grown >= 0) close(grown);
}
