/*
 * spliceRelay: moves bytes both ways between two connected stream sockets, for every relay of the
 * process on a fixed pool of native threads (one epoll loop each, at most MAX_LOOPS, never Node's
 * threads): non-blocking splice(2) through a pipe per direction while it has bytes in flight, the
 * pipes pooled (an idle connection holds none) and capped per loop — past the cap a direction
 * copies through a 64 KiB buffer instead. EOF one way becomes shutdown(SHUT_WR) on the other
 * socket once drained (half-close); a relay idle longer than its idleMs is ended.
 * Limits: Linux only. The fds stay the caller's: it must stop libuv reading and writing them
 * before the call and close them only after the done callback (the relay never closes them).
 * Bytes in flight when a relay is cancelled, fails or times out are dropped. A relay keeps Node's
 * event loop alive until it reports done; when the environment ends, relays stop unreported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cnmkit.h"
#include "relay.h"

/* What one direction may move in one turn before the loop serves the others. */
#define TURN_BYTES (1024 * 1024)
#define EVENTS 256
#define MAX_LOOPS 4

/* Hands r's report to JS (loop thread, at the end of a turn). */
static void post_done(loop_t *l, relay_t *r) {
  if (napi_call_threadsafe_function(l->engine->done, r, napi_tsfn_nonblocking) != napi_ok) relay_unref(r);
}

/* Ends r: off the loop, storage back, reported at the end of this turn. */
void relay_finish(loop_t *l, relay_t *r, int err, const char *syscall) {
  if (r->state != RELAY_LIVE) return;
  r->state = RELAY_FINISHED;
  if (err != 0 && r->err == 0) {
    r->err = err;
    r->syscall = syscall;
  }
  for (int i = 0; i < 2; i++) epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, r->fd[i], NULL);
  for (int i = 0; i < 2; i++) storage_drop(l, &r->dir[i]);
  if (r->ready) ready_remove(l, r);
  if (r->prev) r->prev->next = r->next;
  else l->live = r->next;
  if (r->next) r->next->prev = r->prev;
  l->relays -= 1;
  pool_trim(l);
  r->next = l->finished;
  l->finished = r;
}

/* Registers a relay the JS thread queued; its first events come from the ADD itself. */
static void relay_start(loop_t *l, relay_t *r, int64_t now) {
  r->state = RELAY_LIVE;
  r->last_ms = now;
  r->prev = NULL;
  r->next = l->live;
  if (l->live) l->live->prev = r;
  l->live = r;
  l->relays += 1;
  if (r->idle_ms > 0 && r->idle_ms / 4 < l->tick_ms) l->tick_ms = r->idle_ms / 4 < 10 ? 10 : r->idle_ms / 4;
  for (int i = 0; i < 2; i++) {
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = (char *)r + i };
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, r->fd[i], &ev) != 0) return relay_finish(l, r, errno, "epoll_ctl");
  }
}

/* Runs what the JS thread queued: new relays and cancels. */
static void run_commands(loop_t *l, int64_t now) {
  uint64_t n;
  if (read(l->wake_fd, &n, sizeof n) < 0) { /* nothing queued */ }
  pthread_mutex_lock(&l->qlock);
  command_t *c = l->commands;
  l->commands = l->commands_tail = NULL;
  pthread_mutex_unlock(&l->qlock);
  while (c != NULL) {
    command_t *next = c->next;
    if (c->cancel && c->relay->state == RELAY_LIVE) {
      c->relay->cancelled = true;
      relay_finish(l, c->relay, 0, NULL);
    } else if (!c->cancel) {
      relay_start(l, c->relay, now);
    }
    if (c->cancel) relay_unref(c->relay);
    free(c);
    c = next;
  }
}

/* Notes what an event says about one socket of a relay; a socket error ends the relay. */
static void on_event(loop_t *l, relay_t *r, int side, uint32_t events) {
  if (r->state != RELAY_LIVE) return;
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(r->fd[side], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return relay_finish(l, r, err, "epoll_wait");
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) r->can_read[side] = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) r->can_write[side] = true;
  if (!r->ready) ready_add(l, r);
}

/* One turn of every ready relay; those with more to move stay ready for the next turn. */
static void run_ready(loop_t *l, int64_t now) {
  relay_t *r = l->ready_head;
  relay_t *last = l->ready_tail;
  while (r != NULL) {
    relay_t *next = r->ready_next;
    bool done_turn = r == last;
    bool more = false;
    ready_remove(l, r);
    for (int d = 0; d < 2 && r->state == RELAY_LIVE; d++) {
      const char *syscall = NULL;
      int err = pump(l, r, d, TURN_BYTES, now, &more, &syscall);
      if (err != 0) relay_finish(l, r, err, syscall);
    }
    if (r->state == RELAY_LIVE && r->dir[0].shut && r->dir[1].shut) relay_finish(l, r, 0, NULL);
    else if (r->state == RELAY_LIVE && more) ready_add(l, r);
    if (done_turn) break;
    r = next;
  }
}

/* Ends relays idle for longer than their idleMs. */
static void expire_idle(loop_t *l, int64_t now) {
  if (now < l->next_scan) return;
  l->next_scan = now + l->tick_ms;
  for (relay_t *r = l->live, *next; r != NULL; r = next) {
    next = r->next;
    if (r->idle_ms <= 0 || now - r->last_ms < r->idle_ms) continue;
    r->timed_out = true;
    cnmkit_budget_hit(r->budget, CNMKIT_HIT_IDLE);
    relay_finish(l, r, 0, NULL);
  }
}

void *loop_main(void *arg) {
  loop_t *l = arg;
  struct epoll_event events[EVENTS];
  while (!atomic_load(&l->stop)) {
    int timeout = l->ready_head != NULL ? 0 : l->live != NULL ? (int)l->tick_ms : -1;
    int n = epoll_wait(l->epoll_fd, events, EVENTS, timeout);
    if (n < 0 && errno != EINTR) break;
    int64_t now = cnmkit_now_ms();
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == WAKE_TAG) {
        run_commands(l, now);
        continue;
      }
      uintptr_t p = (uintptr_t)events[i].data.ptr;
      on_event(l, (relay_t *)(p & ~(uintptr_t)1), (int)(p & 1), events[i].events);
    }
    run_ready(l, now);
    expire_idle(l, now);
    for (relay_t *r = l->finished, *next; r != NULL; r = next) {
      next = r->next;
      post_done(l, r);
    }
    l->finished = NULL;
  }
  return NULL;
}

/* Runs on the JS thread: done(err, { aToB, bToA, cancelled, timedOut }). */
static void deliver(napi_env env, napi_value cb, void *context, void *data) {
  (void)cb;
  engine_t *e = context;
  relay_t *r = data;
  napi_value done = NULL, argv[2], v, undefined;
  if (env != NULL && r->done != NULL && napi_get_reference_value(env, r->done, &done) == napi_ok && done != NULL) {
    if (r->err != 0) argv[0] = cnmkit_errno_error(env, r->err, r->syscall, NULL);
    else napi_get_null(env, &argv[0]);
    napi_create_object(env, &argv[1]);
    napi_create_double(env, (double)atomic_load(&r->dir[0].bytes), &v);
    napi_set_named_property(env, argv[1], "aToB", v);
    napi_create_double(env, (double)atomic_load(&r->dir[1].bytes), &v);
    napi_set_named_property(env, argv[1], "bToA", v);
    napi_get_boolean(env, r->cancelled, &v);
    napi_set_named_property(env, argv[1], "cancelled", v);
    napi_get_boolean(env, r->timed_out, &v);
    napi_set_named_property(env, argv[1], "timedOut", v);
    napi_get_undefined(env, &undefined);
    napi_delete_reference(env, r->done);
    r->done = NULL;
    engine_js_done(e, env);
    relay_unref(r);
    napi_call_function(env, undefined, done, 2, argv, NULL);
    return;
  }
  relay_unref(r);
}

/* The engine of env, started on first use. */
static engine_t *engine_get(napi_env env, int *err, const char **syscall) {
  engine_t *e = NULL;
  if (napi_get_instance_data(env, (void **)&e) == napi_ok && e != NULL) return e;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int loops = cpus < 1 ? 1 : cpus > MAX_LOOPS ? MAX_LOOPS : (int)cpus;
  e = engine_start(env, loops, deliver, err, syscall);
  return e;
}

/* Checks that fd is an open, non-blocking stream socket (as libuv's are); throws otherwise. */
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

/* The relay options: { idleMs?: ms (0 = none), budget?: proxyBudget counting its bytes }. */
static int read_options(napi_env env, size_t argc, napi_value *argv, int64_t *idle_ms, cnmkit_budget_t **budget) {
  napi_valuetype type = napi_undefined;
  if (argc > 3) napi_typeof(env, argv[3], &type);
  if (type == napi_undefined) return 0;
  napi_value v;
  bool has = false;
  if (type != napi_object) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected options to be an object");
    return -1;
  }
  if (napi_has_named_property(env, argv[3], "idleMs", &has) == napi_ok && has) {
    napi_get_named_property(env, argv[3], "idleMs", &v);
    if (napi_get_value_int64(env, v, idle_ms) != napi_ok || *idle_ms < 0) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected options.idleMs to be a non-negative integer");
      return -1;
    }
  }
  if (napi_has_named_property(env, argv[3], "budget", &has) == napi_ok && has) {
    napi_get_named_property(env, argv[3], "budget", &v);
    if ((*budget = cnmkit_budget_arg(env, v)) == NULL) return -1;
  }
  return 0;
}

/* handle.cancel(): stops a running relay; its done callback then reports cancelled. */
static napi_value relay_cancel(napi_env env, napi_callback_info info) {
  relay_t *r = cnmkit_unwrap_this(env, info, NULL, NULL, "a splice relay handle");
  if (r != NULL && r->done != NULL && !loop_queue(r->loop, r, true)) cnmkit_throw_errno(env, ENOMEM, "malloc", NULL);
  return NULL;
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_unref(data);
}

/* spliceRelay(fdA, fdB, done[, options]): relays A → B and B → A; returns a handle with cancel(). */
static napi_value splice_relay(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], handle, cancel;
  int32_t a = -1, b = -1;
  int64_t idle_ms = 0;
  cnmkit_budget_t *budget = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 2)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fdA, fdB, done[, options])");
    return NULL;
  }
  if (check_socket(env, argv[0], &a) != 0 || check_socket(env, argv[1], &b) != 0) return NULL;
  if (a == b) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "fdA and fdB must be two different sockets");
    return NULL;
  }
  if (read_options(env, argc, argv, &idle_ms, &budget) != 0) return NULL;
  int err = 0;
  const char *syscall = NULL;
  engine_t *e = engine_get(env, &err, &syscall);
  if (e == NULL) { cnmkit_throw_errno(env, err, syscall, NULL); return NULL; }
  relay_t *r = relay_new(a, b, idle_ms, budget);
  if (r == NULL) { cnmkit_throw_errno(env, ENOMEM, "calloc", NULL); return NULL; }
  napi_create_reference(env, argv[2], 1, &r->done);
  napi_create_object(env, &handle);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, relay_cancel, NULL, &cancel);
  napi_set_named_property(env, handle, "cancel", cancel);
  if (napi_wrap(env, handle, r, handle_finalize, NULL, NULL) != napi_ok) {
    napi_delete_reference(env, r->done);
    relay_unref(r);
    relay_unref(r);
    napi_throw_error(env, NULL, "spliceRelay: cannot wrap the handle");
    return NULL;
  }
  if (!loop_queue(engine_pick(e), r, false)) {
    napi_delete_reference(env, r->done);
    r->done = NULL;
    relay_unref(r); /* the engine's reference; the handle's goes with the handle */
    cnmkit_throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  engine_js_start(e, env);
  return handle;
}

void cnmkit_splice_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "spliceRelay", NAPI_AUTO_LENGTH, splice_relay, NULL, &fn);
  napi_set_named_property(env, exports, "spliceRelay", fn);
}
