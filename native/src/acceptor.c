/*
 * tcpAcceptor: holds many listening TCP sockets for the userland proxy and accepts on all of them
 * from one native thread (epoll), handing each accepted socket to JS as (listener id, fd).
 * A batch of ports is bound in one call, all or nothing: a 1000-port range costs a few thousand
 * syscalls instead of a thousand libuv handles and JS servers.
 * Making one grows the fd table ahead (see grow_fd_table).
 * Limits: Linux only; TCP only (IPv4, or IPv6 with or without v6only); fds below 2^24. Accepted
 * fds belong to JS from delivery on; an accept that JS can no longer take is closed here. When
 * accept fails for lack of fds the thread reports it and pauses 50 ms instead of spinning.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cnmkit.h"

/* A listener id: serial * 2^24 + fd, exact in a JS number; 0 is never an id. */
#define FD_BITS 24
#define FD_LIMIT (1 << FD_BITS)
#define SERIAL_LIMIT (1u << 28)
#define ACCEPTS_PER_EVENT 64
#define EVENTS 256
#define BACKOFF_US 50000
/* The fd table is grown to this many slots (or the fd limit) when an acceptor is made. */
#define FD_TABLE_SLOTS 32768

typedef struct {
  napi_env env;
  napi_threadsafe_function deliver;
  pthread_t thread;
  bool thread_started;
  int epoll_fd, wake_fd;
  pthread_mutex_t lock;      /* guards serials, listeners and the listening fds' lifetime */
  uint32_t *serials;         /* by fd: the serial of the listener holding it, 0 = none */
  size_t slots;
  uint32_t next_serial;
  size_t listeners;
  bool stopping;
  bool tsfn_referenced;
} acceptor_t;

/* What one accept hands to JS: fd >= 0, or -errno when accept failed. */
typedef struct {
  uint64_t id;
  int fd;
} accepted_t;

static uint64_t make_id(uint32_t serial, int fd) { return (uint64_t)serial * FD_LIMIT + (uint64_t)fd; }

static void send_to_js(acceptor_t *a, uint64_t id, int fd) {
  accepted_t *msg = malloc(sizeof *msg);
  if (msg != NULL) {
    msg->id = id;
    msg->fd = fd;
    if (napi_call_threadsafe_function(a->deliver, msg, napi_tsfn_nonblocking) == napi_ok) return;
    free(msg);
  }
  if (fd >= 0) close(fd);
}

/* Accepts what listener id has queued; false when the thread should back off (out of fds). */
static bool accept_some(acceptor_t *a, uint64_t id) {
  int lfd = (int)(id % FD_LIMIT);
  uint32_t serial = (uint32_t)(id / FD_LIMIT);
  bool ok = true;
  pthread_mutex_lock(&a->lock);
  for (int i = 0; i < ACCEPTS_PER_EVENT && (size_t)lfd < a->slots && a->serials[lfd] == serial; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      send_to_js(a, id, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN) {
      send_to_js(a, id, -errno);
      ok = false;
    }
    break;
  }
  pthread_mutex_unlock(&a->lock);
  return ok;
}

static void *acceptor_main(void *arg) {
  acceptor_t *a = arg;
  struct epoll_event events[EVENTS];
  for (;;) {
    int n = epoll_wait(a->epoll_fd, events, EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    bool backoff = false;
    for (int i = 0; i < n; i++) {
      if (events[i].data.u64 == 0) return NULL; /* the wake eventfd: stop */
      if (!accept_some(a, events[i].data.u64)) backoff = true;
    }
    if (backoff) usleep(BACKOFF_US);
  }
  return NULL;
}

/* Runs on the JS thread: onAccept(id, fd) or onAccept(id, -1, error). */
static void deliver(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  accepted_t *msg = data;
  if (env == NULL || cb == NULL) {
    if (msg->fd >= 0) close(msg->fd);
    free(msg);
    return;
  }
  napi_value argv[3], undefined;
  napi_create_int64(env, (int64_t)msg->id, &argv[0]);
  napi_create_int32(env, msg->fd >= 0 ? msg->fd : -1, &argv[1]);
  if (msg->fd >= 0) napi_get_undefined(env, &argv[2]);
  else argv[2] = cnmkit_errno_error(env, -msg->fd, "accept4", NULL);
  napi_get_undefined(env, &undefined);
  free(msg);
  napi_call_function(env, undefined, cb, 3, argv, NULL);
}

/* The thread stops, every listening fd closes; pending deliveries close their fds. */
static void acceptor_stop(acceptor_t *a) {
  pthread_mutex_lock(&a->lock);
  bool was = a->stopping;
  a->stopping = true;
  pthread_mutex_unlock(&a->lock);
  if (was) return;
  uint64_t one = 1;
  if (write(a->wake_fd, &one, sizeof one) < 0) { /* the thread is gone already */ }
  if (a->thread_started) pthread_join(a->thread, NULL);
  for (size_t fd = 0; fd < a->slots; fd++)
    if (a->serials[fd] != 0) close((int)fd);
  a->listeners = 0;
  close(a->epoll_fd);
  close(a->wake_fd);
  napi_release_threadsafe_function(a->deliver, napi_tsfn_abort);
}

static void cleanup_hook(void *arg) { acceptor_stop(arg); }

static void acceptor_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  acceptor_t *a = data;
  acceptor_stop(a);
  napi_remove_env_cleanup_hook(env, cleanup_hook, a);
  free(a->serials);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

/* Keeps Node's event loop alive exactly while something listens (like a net.Server). */
static void update_ref(acceptor_t *a) {
  bool want = a->listeners > 0 && !a->stopping;
  if (want == a->tsfn_referenced) return;
  if (want) napi_ref_threadsafe_function(a->env, a->deliver);
  else napi_unref_threadsafe_function(a->env, a->deliver);
  a->tsfn_referenced = want;
}

static acceptor_t *unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  acceptor_t *a = cnmkit_unwrap_this(env, info, argc, argv, "a TCP acceptor");
  if (a == NULL) return NULL;
  if (a->stopping) {
    cnmkit_throw_errno(env, EBADF, "acceptor", NULL);
    return NULL;
  }
  return a;
}

/* A bound, listening, non-blocking socket for addr:port, or -errno (with *syscall set). */
static int open_listener(const struct sockaddr_storage *base, socklen_t len, int port, bool v6only, int backlog, const char **syscall) {
  struct sockaddr_storage sa = *base;
  if (sa.ss_family == AF_INET) ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
  else ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
  *syscall = "socket";
  int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, v6 = v6only ? 1 : 0, err = 0;
  if (fd >= FD_LIMIT) err = EMFILE;
  else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) { err = errno; *syscall = "setsockopt"; }
  else if (sa.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) != 0) { err = errno; *syscall = "setsockopt"; }
  else if (bind(fd, (struct sockaddr *)&sa, len) != 0) { err = errno; *syscall = "bind"; }
  else if (listen(fd, backlog) != 0) { err = errno; *syscall = "listen"; }
  if (err == 0) return fd;
  close(fd);
  return -err;
}

/* Makes room for fd in the serials table (lock held). */
static int ensure_slot(acceptor_t *a, int fd) {
  if ((size_t)fd < a->slots) return 0;
  size_t slots = a->slots == 0 ? 1024 : a->slots;
  while (slots <= (size_t)fd) slots *= 2;
  uint32_t *grown = realloc(a->serials, slots * sizeof *grown);
  if (grown == NULL) return ENOMEM;
  memset(grown + a->slots, 0, (slots - a->slots) * sizeof *grown);
  a->serials = grown;
  a->slots = slots;
  return 0;
}

/* An errno error with the port that failed: err.port. */
static void throw_port_error(napi_env env, int err, const char *syscall, int port) {
  napi_value e = cnmkit_errno_error(env, err, syscall, NULL), v;
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, e, "port", v);
  napi_throw(env, e);
}

/*
 * acceptor.listen(address, firstPort, count, ipv6Only, backlog): binds firstPort .. firstPort+count-1
 * on address and returns their listener ids in port order. All or nothing: on the first failure the
 * sockets of this call are closed and the error (errno, code, syscall, port) is thrown.
 */
static napi_value acceptor_listen(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  acceptor_t *a = unwrap_this(env, info, &argc, argv);
  if (a == NULL) return NULL;
  char address[64];
  size_t alen = 0;
  int32_t first = 0, count = 0, backlog = 511;
  bool v6only = false;
  if (argc < 5 || napi_get_value_string_utf8(env, argv[0], address, sizeof address, &alen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &first) != napi_ok || napi_get_value_int32(env, argv[2], &count) != napi_ok ||
      napi_get_value_bool(env, argv[3], &v6only) != napi_ok || napi_get_value_int32(env, argv[4], &backlog) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (address, firstPort, count, ipv6Only, backlog)");
    return NULL;
  }
  if (first < 1 || count < 1 || first + count - 1 > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "ports must lie in 1-65535");
    return NULL;
  }
  struct sockaddr_storage sa;
  socklen_t len;
  memset(&sa, 0, sizeof sa);
  if (inet_pton(AF_INET, address, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
    sa.ss_family = AF_INET;
    len = sizeof(struct sockaddr_in);
  } else if (inet_pton(AF_INET6, address, &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
    sa.ss_family = AF_INET6;
    len = sizeof(struct sockaddr_in6);
  } else {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "address is not an IPv4 or IPv6 address");
    return NULL;
  }
  int *fds = malloc((size_t)count * sizeof *fds);
  if (fds == NULL) { cnmkit_throw_errno(env, ENOMEM, "malloc", NULL); return NULL; }
  const char *syscall = NULL;
  int opened = 0, err = 0;
  for (; opened < count; opened++) {
    int fd = open_listener(&sa, len, first + opened, v6only, backlog, &syscall);
    if (fd < 0) { err = -fd; break; }
    fds[opened] = fd;
  }
  napi_value ids = NULL;
  if (err == 0) {
    napi_create_array_with_length(env, (size_t)count, &ids);
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < count && err == 0; i++) {
      if ((err = ensure_slot(a, fds[i])) != 0) { syscall = "realloc"; break; }
      uint32_t serial = a->next_serial;
      a->next_serial = a->next_serial + 1 >= SERIAL_LIMIT ? 1 : a->next_serial + 1;
      struct epoll_event ev = { .events = EPOLLIN, .data.u64 = make_id(serial, fds[i]) };
      if (epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, fds[i], &ev) != 0) { err = errno; syscall = "epoll_ctl"; break; }
      a->serials[fds[i]] = serial;
      napi_value v;
      napi_create_int64(env, (int64_t)ev.data.u64, &v);
      napi_set_element(env, ids, (uint32_t)i, v);
    }
    if (err != 0) {
      for (int i = 0; i < count; i++) {
        if ((size_t)fds[i] < a->slots && a->serials[fds[i]] != 0) {
          epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, fds[i], NULL);
          a->serials[fds[i]] = 0;
        }
      }
    } else {
      a->listeners += (size_t)count;
    }
    pthread_mutex_unlock(&a->lock);
  }
  int failed_port = first + opened;
  if (err != 0) {
    for (int i = 0; i < opened; i++) close(fds[i]);
    free(fds);
    throw_port_error(env, err, syscall, opened < count ? failed_port : first);
    return NULL;
  }
  free(fds);
  update_ref(a);
  return ids;
}

/* acceptor.close(ids): stops listening on each id and closes its socket; unknown ids are skipped. */
static napi_value acceptor_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  acceptor_t *a = unwrap_this(env, info, &argc, argv);
  if (a == NULL) return NULL;
  bool is_array = false;
  uint32_t n = 0;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an array of listener ids");
    return NULL;
  }
  napi_get_array_length(env, argv[0], &n);
  pthread_mutex_lock(&a->lock);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int64_t id = 0;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || napi_get_value_int64(env, v, &id) != napi_ok || id <= 0) continue;
    int fd = (int)((uint64_t)id % FD_LIMIT);
    uint32_t serial = (uint32_t)((uint64_t)id / FD_LIMIT);
    if ((size_t)fd >= a->slots || a->serials[fd] != serial) continue;
    epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    a->serials[fd] = 0;
    close(fd);
    a->listeners -= 1;
  }
  pthread_mutex_unlock(&a->lock);
  update_ref(a);
  return NULL;
}

/*
 * Grows the process's fd table once, to FD_TABLE_SLOTS or the fd limit. Tables shared by threads
 * are grown with a synchronize_rcu() per doubling (milliseconds each): paid here, at start, instead
 * of by the first publish of a large range. Best effort.
 */
static void grow_fd_table(int fd) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < 2) return;
  int top = lim.rlim_cur < FD_TABLE_SLOTS ? (int)lim.rlim_cur - 1 : FD_TABLE_SLOTS - 1;
  if (top <= fd) return;
  if (dup3(fd, top, O_CLOEXEC) == top) close(top);
}

/* tcpAcceptor(onAccept): a new acceptor with its thread running and nothing bound. */
static napi_value tcp_acceptor(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], handle, fn, name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 0)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (onAccept)");
    return NULL;
  }
  acceptor_t *a = calloc(1, sizeof *a);
  if (a == NULL) { cnmkit_throw_errno(env, ENOMEM, "calloc", NULL); return NULL; }
  a->env = env;
  a->next_serial = 1;
  pthread_mutex_init(&a->lock, NULL);
  a->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event wake = { .events = EPOLLIN, .data.u64 = 0 };
  int err = 0;
  const char *syscall = "epoll_create1";
  if (a->epoll_fd < 0) err = errno;
  else if (a->wake_fd < 0) { err = errno; syscall = "eventfd"; }
  else if (epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, a->wake_fd, &wake) != 0) { err = errno; syscall = "epoll_ctl"; }
  napi_create_string_utf8(env, "cnmkit:tcpAcceptor", NAPI_AUTO_LENGTH, &name);
  if (err == 0 && napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, a, deliver, &a->deliver) != napi_ok) {
    err = ENOMEM;
    syscall = "napi_create_threadsafe_function";
  }
  if (err == 0) {
    napi_unref_threadsafe_function(env, a->deliver);
    err = cnmkit_thread_start(&a->thread, NULL, acceptor_main, a);
    if (err != 0) {
      syscall = "pthread_create";
      napi_release_threadsafe_function(a->deliver, napi_tsfn_abort);
    }
  }
  if (err == 0) grow_fd_table(a->epoll_fd);
  if (err != 0) {
    if (a->epoll_fd >= 0) close(a->epoll_fd);
    if (a->wake_fd >= 0) close(a->wake_fd);
    pthread_mutex_destroy(&a->lock);
    free(a);
    cnmkit_throw_errno(env, err, syscall, NULL);
    return NULL;
  }
  a->thread_started = true;
  napi_create_object(env, &handle);
  napi_create_function(env, "listen", NAPI_AUTO_LENGTH, acceptor_listen, NULL, &fn);
  napi_set_named_property(env, handle, "listen", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, acceptor_close, NULL, &fn);
  napi_set_named_property(env, handle, "close", fn);
  napi_wrap(env, handle, a, acceptor_finalize, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup_hook, a);
  return handle;
}

void cnmkit_acceptor_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "tcpAcceptor", NAPI_AUTO_LENGTH, tcp_acceptor, NULL, &fn);
  napi_set_named_property(env, exports, "tcpAcceptor", fn);
}
