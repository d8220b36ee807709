/*
 * spliceRelay: moves bytes both ways between two connected stream sockets with splice(2)
 * through a pipe per direction, on one native thread per direction (never on Node's threads);
 * EOF in a direction becomes shutdown(SHUT_WR) on the other socket once its pipe is drained.
 * Limits: Linux only. The fds stay the caller's: it must stop libuv reading and writing them
 * before the call and close them only after the done callback (the relay never closes them).
 * Bytes still in a pipe when the relay is cancelled or fails are dropped. No idle timeout.
 * A relay keeps Node's event loop alive until it reports done. When a Worker's environment ends
 * under running relays they are stopped without a report, but its sockets close first.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cnmkit.h"

/* Asked of each pipe with F_SETPIPE_SZ (best effort: the kernel's pipe-max-size may cap it). */
#define PIPE_BYTES (1024 * 1024)
#define PUMP_STACK (128 * 1024)

typedef struct relay relay_t;

/* One direction: in → pipe → out. Its fields belong to its thread until it is done. */
typedef struct {
  relay_t *relay;
  int in, out;
  int pipe_r, pipe_w;
  size_t cap;
  uint64_t bytes;
} pump_t;

struct relay {
  atomic_int refs;       /* the JS handle, the threadsafe function, the pumps (as one) */
  atomic_int running;    /* pumps not done yet */
  atomic_bool stop;      /* cancel(), or the other pump failed */
  atomic_int err;        /* first errno a pump met; 0 = none */
  const char *syscall;   /* of err, written once by the pump that set it */
  pthread_mutex_t lock;  /* guards wake_fd, the fields below and the tsfn's last call */
  int wake_fd;           /* eventfd the pumps poll; closed when both are done */
  bool cancelled;        /* cancel() reached a running relay */
  bool silent;           /* the start failed: the caller got a throw, no callback */
  bool tsfn_gone;        /* the threadsafe function was finalized (environment teardown) */
  napi_threadsafe_function done;
  pump_t pumps[2];
};

static void relay_unref(relay_t *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  if (r->wake_fd >= 0) close(r->wake_fd);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* Wakes both pumps out of poll and makes them stop; a no-op once they are done. */
static void relay_stop(relay_t *r) {
  atomic_store(&r->stop, true);
  uint64_t one = 1;
  if (r->wake_fd >= 0 && write(r->wake_fd, &one, sizeof one) < 0) { /* already signalled */ }
}

static void relay_fail(relay_t *r, int err, const char *syscall) {
  int none = 0;
  if (atomic_compare_exchange_strong(&r->err, &none, err)) r->syscall = syscall;
  pthread_mutex_lock(&r->lock);
  relay_stop(r);
  pthread_mutex_unlock(&r->lock);
}

/* The pending error of socket fd, or EPIPE when it has none (it hung up). */
static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err != 0 ? err : EPIPE;
}

/* Sleeps until the pump can move again. While it waits for input it also watches out, with no
 * events, so that a reset of out ends the relay at once instead of at the next write. */
static int pump_wait(pump_t *p, bool want_in, bool want_out, const char **syscall) {
  struct pollfd fds[3] = {
    { .fd = p->relay->wake_fd, .events = POLLIN, .revents = 0 },
    { .fd = p->out, .events = want_out ? POLLOUT : 0, .revents = 0 },
    { .fd = want_in ? p->in : -1, .events = POLLIN, .revents = 0 },
  };
  if (poll(fds, 3, -1) < 0) {
    if (errno == EINTR) return 0;
    *syscall = "poll";
    return errno;
  }
  if (!want_out && (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
    *syscall = "poll";
    return socket_error(p->out);
  }
  return 0;
}

/* Moves in → out until EOF (then shuts out's write side), an error (returned) or a stop. */
static int pump_run(pump_t *p, const char **syscall) {
  size_t queued = 0;
  bool eof = false;
  *syscall = "splice";
  while (!atomic_load(&p->relay->stop)) {
    bool moved = false, want_in = false, want_out = false;
    if (!eof && queued < p->cap) {
      ssize_t n = splice(p->in, NULL, p->pipe_w, NULL, p->cap - queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        queued += (size_t)n;
        moved = true;
      } else if (n == 0) {
        eof = true;
        moved = true;
      } else if (errno == EAGAIN) {
        want_in = queued == 0; /* else the pipe may be out of slots: drain it first */
      } else if (errno != EINTR) {
        return errno;
      }
    }
    if (queued > 0) {
      ssize_t n = splice(p->pipe_r, NULL, p->out, NULL, queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        queued -= (size_t)n;
        p->bytes += (uint64_t)n;
        moved = true;
      } else if (n == 0 || errno == EAGAIN) {
        want_out = true;
      } else if (errno != EINTR) {
        return errno;
      }
    }
    if (eof && queued == 0) {
      if (shutdown(p->out, SHUT_WR) == 0 || errno == ENOTCONN) return 0;
      *syscall = "shutdown";
      return errno;
    }
    if (moved) continue;
    int err = pump_wait(p, want_in, want_out, syscall);
    if (err != 0) return err;
  }
  return 0;
}

/* A pump has ended (or never started): closes its pipe; the last one reports to JS. */
static void pump_done(pump_t *p) {
  relay_t *r = p->relay;
  close(p->pipe_r);
  close(p->pipe_w);
  if (atomic_fetch_sub(&r->running, 1) != 1) return;
  pthread_mutex_lock(&r->lock);
  close(r->wake_fd);
  r->wake_fd = -1;
  if (!r->tsfn_gone) {
    if (r->silent || napi_call_threadsafe_function(r->done, NULL, napi_tsfn_nonblocking) == napi_ok)
      napi_release_threadsafe_function(r->done, napi_tsfn_release);
  }
  pthread_mutex_unlock(&r->lock);
  relay_unref(r);
}

static void *pump_main(void *arg) {
  pump_t *p = arg;
  const char *syscall = NULL;
  int err = pump_run(p, &syscall);
  if (err != 0) relay_fail(p->relay, err, syscall);
  pump_done(p);
  return NULL;
}

/* Runs on the JS thread: done(err, { aToB, bToA, cancelled }). */
static void deliver(napi_env env, napi_value done, void *context, void *data) {
  (void)data;
  relay_t *r = context;
  if (env == NULL || done == NULL) return;
  napi_value argv[2], v, undefined;
  int err = atomic_load(&r->err);
  if (err != 0) argv[0] = cnmkit_errno_error(env, err, r->syscall, NULL);
  else napi_get_null(env, &argv[0]);
  napi_create_object(env, &argv[1]);
  napi_create_double(env, (double)r->pumps[0].bytes, &v);
  napi_set_named_property(env, argv[1], "aToB", v);
  napi_create_double(env, (double)r->pumps[1].bytes, &v);
  napi_set_named_property(env, argv[1], "bToA", v);
  napi_get_boolean(env, r->cancelled, &v);
  napi_set_named_property(env, argv[1], "cancelled", v);
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, done, 2, argv, NULL);
}

/* The threadsafe function is gone: after the report, or when the environment shuts down
 * under running pumps (then they are stopped and never report). */
static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_t *r = data;
  pthread_mutex_lock(&r->lock);
  r->tsfn_gone = true;
  relay_stop(r);
  pthread_mutex_unlock(&r->lock);
  relay_unref(r);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_unref(data);
}

/* handle.cancel(): stops a running relay; its done callback then reports cancelled. */
static napi_value relay_cancel(napi_env env, napi_callback_info info) {
  relay_t *r = cnmkit_unwrap_this(env, info, NULL, NULL, "a splice relay handle");
  if (r == NULL) return NULL;
  pthread_mutex_lock(&r->lock);
  if (r->wake_fd >= 0) {
    r->cancelled = true;
    relay_stop(r);
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

static int open_pipe(pump_t *p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
  p->pipe_r = fds[0];
  p->pipe_w = fds[1];
  fcntl(p->pipe_w, F_SETPIPE_SZ, PIPE_BYTES);
  int size = fcntl(p->pipe_w, F_GETPIPE_SZ);
  p->cap = size > 0 ? (size_t)size : 65536;
  return 0;
}

static void close_pipes(relay_t *r) {
  for (int i = 0; i < 2; i++) {
    if (r->pumps[i].pipe_r < 0) continue;
    close(r->pumps[i].pipe_r);
    close(r->pumps[i].pipe_w);
  }
}

/* A relay with its eventfd and pipes open, holding one reference (the caller's). */
static relay_t *relay_new(int a, int b, int *err, const char **syscall) {
  relay_t *r = calloc(1, sizeof *r);
  if (r == NULL) { *err = ENOMEM; *syscall = "calloc"; return NULL; }
  atomic_init(&r->refs, 1);
  pthread_mutex_init(&r->lock, NULL);
  r->pumps[0] = (pump_t){ .relay = r, .in = a, .out = b, .pipe_r = -1, .pipe_w = -1 };
  r->pumps[1] = (pump_t){ .relay = r, .in = b, .out = a, .pipe_r = -1, .pipe_w = -1 };
  r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  *err = r->wake_fd < 0 ? errno : 0;
  *syscall = r->wake_fd < 0 ? "eventfd" : "pipe2";
  for (int i = 0; i < 2 && *err == 0; i++) *err = open_pipe(&r->pumps[i]);
  if (*err == 0) return r;
  close_pipes(r);
  relay_unref(r);
  return NULL;
}

/* Starts both pumps with every signal blocked (signals belong to Node's main thread).
 * If one cannot start, the relay stops silently and the error is returned for a throw. */
static int start_pumps(relay_t *r) {
  pthread_attr_t attr;
  int err = 0, started = 0;
  atomic_fetch_add(&r->refs, 1);
  atomic_init(&r->running, 2);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, PUMP_STACK);
  for (; started < 2 && err == 0; started++) {
    pthread_t tid;
    err = cnmkit_thread_start(&tid, &attr, pump_main, &r->pumps[started]);
    if (err != 0) break;
  }
  pthread_attr_destroy(&attr);
  if (err == 0) return 0;
  pthread_mutex_lock(&r->lock);
  r->silent = true;
  relay_stop(r);
  pthread_mutex_unlock(&r->lock);
  for (int i = started; i < 2; i++) pump_done(&r->pumps[i]);
  return err;
}

/* Checks that fd is an open, non-blocking stream socket (as libuv's are: a blocking one would
 * make a pump deaf to cancel); throws (and returns -1) when it is not. */
static int check_socket(napi_env env, napi_value v, int32_t *fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (napi_get_value_int32(env, v, fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a file descriptor (a non-negative integer)");
    return -1;
  }
  if (getsockopt(*fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    cnmkit_throw_errno(env, errno, "getsockopt", NULL);
    return -1;
  }
  if (type != SOCK_STREAM) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "expected a stream (TCP or unix stream) socket");
    return -1;
  }
  int flags = fcntl(*fd, F_GETFL);
  if (flags < 0) {
    cnmkit_throw_errno(env, errno, "fcntl", NULL);
    return -1;
  }
  if ((flags & O_NONBLOCK) == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "expected a non-blocking socket (as libuv's are)");
    return -1;
  }
  return 0;
}

/* spliceRelay(fdA, fdB, done): relays A → B and B → A; returns a handle with cancel(). */
static napi_value splice_relay(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name, handle, cancel;
  int32_t a = -1, b = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 2)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fdA, fdB, done)");
    return NULL;
  }
  if (check_socket(env, argv[0], &a) != 0 || check_socket(env, argv[1], &b) != 0) return NULL;
  if (a == b) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "fdA and fdB must be two different sockets");
    return NULL;
  }
  int err;
  const char *syscall;
  relay_t *r = relay_new(a, b, &err, &syscall);
  if (r == NULL) { cnmkit_throw_errno(env, err, syscall, NULL); return NULL; }
  napi_create_string_utf8(env, "cnmkit:spliceRelay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, r, tsfn_finalize, r, deliver, &r->done) != napi_ok) {
    close_pipes(r);
    relay_unref(r);
    napi_throw_error(env, NULL, "spliceRelay: cannot create the completion callback");
    return NULL;
  }
  atomic_fetch_add(&r->refs, 1); /* the threadsafe function's, dropped in tsfn_finalize */
  napi_create_object(env, &handle);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, relay_cancel, NULL, &cancel);
  napi_set_named_property(env, handle, "cancel", cancel);
  if (napi_wrap(env, handle, r, handle_finalize, NULL, NULL) != napi_ok) relay_unref(r);
  if ((err = start_pumps(r)) != 0) {
    cnmkit_throw_errno(env, err, "pthread_create", NULL);
    return NULL;
  }
  return handle;
}

/* Node unloads an addon when the last Worker that loaded it exits; pumps still ending then would
 * run unmapped code. Marking this library RTLD_NODELETE keeps it mapped for the process's life. */
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)pin_library, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void cnmkit_splice_init(napi_env env, napi_value exports) {
  napi_value fn;
  pin_library();
  napi_create_function(env, "spliceRelay", NAPI_AUTO_LENGTH, splice_relay, NULL, &fn);
  napi_set_named_property(env, exports, "spliceRelay", fn);
}
