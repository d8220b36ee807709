/*
 * netlinkRequest: one rtnetlink request and its whole answer in a single call. The kernel handles
 * an rtnetlink request inside sendmsg(2), so its reply and ACK are queued before sendmsg returns:
 * reading them at once spares the event-loop turns a callback transport costs on every request.
 * netlinkRequestAsync: the same on a thread of libuv's pool, for requests the kernel takes long
 * over (deleting a device waits for RCU grace periods): the JS thread goes on meanwhile.
 * Limits: for requests that end with an ACK (NLM_F_ACK set) or NLMSG_DONE, not for dumps that
 * outgrow one reply buffer per datagram (64 KiB); the socket must be the caller's own (no other
 * reader; one async request at a time per socket). Waits at most timeoutMs for an answer.
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

/* One request: the socket, the whole message (its seq set), how long to wait for the answer. */
typedef struct {
  int32_t fd, timeout;
  void *msg;
  size_t msg_len;
} request_t;

/* The datagrams answering one request, in order. */
typedef struct {
  char **data;
  size_t *len;
  size_t count, cap;
  int err;              /* 0, or the errno that ended the exchange */
  const char *syscall;  /* of err */
} answer_t;

static void answer_free(answer_t *a) {
  for (size_t i = 0; i < a->count; i++) free(a->data[i]);
  free(a->data);
  free(a->len);
}

static int answer_add(answer_t *a, const char *buf, size_t n) {
  if (a->count == a->cap) {
    size_t cap = a->cap == 0 ? 4 : a->cap * 2;
    char **data = realloc(a->data, cap * sizeof *data);
    if (data == NULL) return ENOMEM;
    a->data = data;
    size_t *len = realloc(a->len, cap * sizeof *len);
    if (len == NULL) return ENOMEM;
    a->len = len;
    a->cap = cap;
  }
  char *copy = malloc(n);
  if (copy == NULL) return ENOMEM;
  memcpy(copy, buf, n);
  a->data[a->count] = copy;
  a->len[a->count++] = n;
  return 0;
}

static void fail(answer_t *a, int err, const char *syscall) {
  a->err = err;
  a->syscall = syscall;
}

/* Sends req's message on its socket and collects the datagrams answering it; datagrams of other
 * sequence numbers are dropped. Runs on any thread; touches no JS. */
static void exchange(const request_t *req, answer_t *a) {
  int fd = req->fd;
  uint32_t seq = ((const struct nlmsghdr *)req->msg)->nlmsg_seq;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  struct iovec iov = { .iov_base = req->msg, .iov_len = req->msg_len };
  struct msghdr mh = { .msg_name = &kernel, .msg_namelen = sizeof kernel, .msg_iov = &iov, .msg_iovlen = 1 };
  ssize_t n;
  do n = sendmsg(fd, &mh, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    fail(a, errno, "sendmsg");
    return;
  }
  char *buf = malloc(REPLY_BYTES);
  if (buf == NULL) {
    fail(a, ENOMEM, "malloc");
    return;
  }
  int64_t deadline = now_ms() + req->timeout;
  for (;;) {
    n = recv(fd, buf, REPLY_BYTES, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int64_t left = deadline - now_ms();
      struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
      int ready = left > 0 ? poll(&p, 1, (int)left) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready > 0) continue;
      fail(a, ready == 0 ? ETIMEDOUT : errno, ready == 0 ? "recv" : "poll");
      break;
    }
    if (n < 0) { fail(a, errno, "recv"); break; }
    if (n > REPLY_BYTES) { fail(a, EMSGSIZE, "recv"); break; }
    bool ours;
    bool done = ends_answer(buf, (size_t)n, seq, &ours);
    int err = ours ? answer_add(a, buf, (size_t)n) : 0;
    if (err != 0) { fail(a, err, "malloc"); break; }
    if (done) break;
  }
  free(buf);
}

/* The answer as an array of Buffers, or the exchange's error (NULL result). */
static napi_value answer_to_js(napi_env env, answer_t *a, napi_value *error) {
  *error = NULL;
  if (a->err != 0) {
    *error = cnmkit_errno_error(env, a->err, a->syscall, NULL);
    return NULL;
  }
  napi_value out, b;
  napi_create_array_with_length(env, a->count, &out);
  for (size_t i = 0; i < a->count; i++) {
    napi_create_buffer_copy(env, a->len[i], a->data[i], NULL, &b);
    napi_set_element(env, out, (uint32_t)i, b);
  }
  return out;
}

/* Reads (fd, message, timeoutMs) of either call; throws and returns false when they are wrong. */
static bool request_args(napi_env env, napi_value *argv, size_t argc, request_t *req) {
  bool is_buffer = false;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &req->fd) != napi_ok || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok ||
      !is_buffer || napi_get_value_int32(env, argv[2], &req->timeout) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fd, message: Buffer, timeoutMs)");
    return false;
  }
  napi_get_buffer_info(env, argv[1], &req->msg, &req->msg_len);
  if (req->msg_len < NLMSG_HDRLEN) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "the message is shorter than a netlink header");
    return false;
  }
  return true;
}

/* netlinkRequest(fd, message, timeoutMs): sends message (a whole netlink message, its seq set) and
 * returns the datagrams that answer it, in order. */
static napi_value netlink_request(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], error;
  request_t req = { 0 };
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!request_args(env, argv, argc, &req)) return NULL;
  answer_t a = { 0 };
  exchange(&req, &a);
  napi_value out = answer_to_js(env, &a, &error);
  answer_free(&a);
  if (error != NULL) napi_throw(env, error);
  return out;
}

/* One netlinkRequestAsync call: its inputs, its answer, its callback. */
typedef struct {
  request_t req;  /* its message a copy owned here */
  answer_t answer;
  napi_ref callback;
  napi_async_work work;
} async_request_t;

static void async_execute(napi_env env, void *data) {
  (void)env;
  async_request_t *r = data;
  exchange(&r->req, &r->answer);
}

static void async_complete(napi_env env, napi_status status, void *data) {
  async_request_t *r = data;
  napi_value cb, undefined, argv[2], error;
  if (status != napi_ok && r->answer.err == 0) fail(&r->answer, ECANCELED, "netlinkRequestAsync");
  argv[1] = answer_to_js(env, &r->answer, &error);
  if (error != NULL) {
    argv[0] = error;
    napi_get_undefined(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
  }
  napi_get_reference_value(env, r->callback, &cb);
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, cb, 2, argv, NULL);
  napi_delete_reference(env, r->callback);
  napi_delete_async_work(env, r->work);
  answer_free(&r->answer);
  free(r->req.msg);
  free(r);
}

/* netlinkRequestAsync(fd, message, timeoutMs, done): the same exchange on a thread of libuv's pool;
 * done(err, datagrams) on the JS thread. The caller keeps fd open until done is called. */
static napi_value netlink_request_async(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  request_t req = { 0 };
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 3)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fd, message: Buffer, timeoutMs, done)");
    return NULL;
  }
  if (!request_args(env, argv, argc, &req)) return NULL;
  async_request_t *r = calloc(1, sizeof *r);
  void *copy = malloc(req.msg_len);
  if (r == NULL || copy == NULL) {
    free(r);
    free(copy);
    cnmkit_throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  memcpy(copy, req.msg, req.msg_len);
  req.msg = copy;
  r->req = req;
  napi_create_reference(env, argv[3], 1, &r->callback);
  napi_create_string_utf8(env, "cnmkit:netlinkRequestAsync", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, async_execute, async_complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return NULL;
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
  napi_create_function(env, "netlinkRequestAsync", NAPI_AUTO_LENGTH, netlink_request_async, NULL, &fn);
  napi_set_named_property(env, exports, "netlinkRequestAsync", fn);
}
