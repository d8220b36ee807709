/*
 * netlinkRequest: one rtnetlink request and its whole answer in a single call. The kernel handles
 * an rtnetlink request inside sendmsg(2), so its reply and ACK are queued before sendmsg returns:
 * reading them at once spares the event-loop turns a callback transport costs on every request.
 * Limits: for requests that end with an ACK (NLM_F_ACK set) or NLMSG_DONE, not for dumps that
 * outgrow one reply buffer per datagram (64 KiB); the socket must be the caller's own (no other
 * reader). Waits at most timeoutMs for an answer, blocking the calling thread meanwhile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cnmkit.h"

#define REPLY_BYTES (64 * 1024)

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the datagram holds the end of the answer to seq (its ACK/error or NLMSG_DONE);
 * *ours tells whether any of its messages answers seq at all. */
static bool ends_answer(const char *buf, size_t len, uint32_t seq, bool *ours) {
  *ours = false;
  for (const struct nlmsghdr *h = (const void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_seq != seq) continue;
    *ours = true;
    if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) return true;
  }
  return false;
}

/* netlinkRequest(fd, message, timeoutMs): sends message (a whole netlink message, its seq set) and
 * returns the datagrams that answer it, in order; datagrams of other sequence numbers are dropped. */
static napi_value netlink_request(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1, timeout = 0;
  void *msg = NULL;
  size_t msg_len = 0;
  bool is_buffer = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok ||
      !is_buffer || napi_get_value_int32(env, argv[2], &timeout) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fd, message: Buffer, timeoutMs)");
    return NULL;
  }
  napi_get_buffer_info(env, argv[1], &msg, &msg_len);
  if (msg_len < NLMSG_HDRLEN) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "the message is shorter than a netlink header");
    return NULL;
  }
  uint32_t seq = ((const struct nlmsghdr *)msg)->nlmsg_seq;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  struct iovec iov = { .iov_base = msg, .iov_len = msg_len };
  struct msghdr mh = { .msg_name = &kernel, .msg_namelen = sizeof kernel, .msg_iov = &iov, .msg_iovlen = 1 };
  ssize_t n;
  do n = sendmsg(fd, &mh, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) { cnmkit_throw_errno(env, errno, "sendmsg", NULL); return NULL; }

  napi_value out;
  napi_create_array(env, &out);
  uint32_t count = 0;
  char *buf = malloc(REPLY_BYTES);
  if (buf == NULL) { cnmkit_throw_errno(env, ENOMEM, "malloc", NULL); return NULL; }
  int64_t deadline = now_ms() + timeout;
  for (;;) {
    n = recv(fd, buf, REPLY_BYTES, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int64_t left = deadline - now_ms();
      struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
      int ready = left > 0 ? poll(&p, 1, (int)left) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready > 0) continue;
      free(buf);
      cnmkit_throw_errno(env, ready == 0 ? ETIMEDOUT : errno, ready == 0 ? "recv" : "poll", NULL);
      return NULL;
    }
    if (n < 0) {
      int err = errno;
      free(buf);
      cnmkit_throw_errno(env, err, "recv", NULL);
      return NULL;
    }
    if (n > REPLY_BYTES) {
      free(buf);
      cnmkit_throw_errno(env, EMSGSIZE, "recv", NULL);
      return NULL;
    }
    bool ours;
    bool done = ends_answer(buf, (size_t)n, seq, &ours);
    if (ours) {
      napi_value b;
      napi_create_buffer_copy(env, (size_t)n, buf, NULL, &b);
      napi_set_element(env, out, count++, b);
    }
    if (done) break;
  }
  free(buf);
  return out;
}

/* netlinkBind(fd): binds a netlink socket to a port the kernel picks and returns that port. */
static napi_value netlink_bind(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], port;
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fd)");
    return NULL;
  }
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { cnmkit_throw_errno(env, errno, "bind", NULL); return NULL; }
  if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) { cnmkit_throw_errno(env, errno, "getsockname", NULL); return NULL; }
  napi_create_uint32(env, sa.nl_pid, &port);
  return port;
}

void cnmkit_rtnl_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "netlinkRequest", NAPI_AUTO_LENGTH, netlink_request, NULL, &fn);
  napi_set_named_property(env, exports, "netlinkRequest", fn);
  napi_create_function(env, "netlinkBind", NAPI_AUTO_LENGTH, netlink_bind, NULL, &fn);
  napi_set_named_property(env, exports, "netlinkBind", fn);
}
