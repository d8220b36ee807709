/*
 * tcpAcceptor: holds many listening TCP sockets for the userland proxy and accepts on all of them
 * from one native thread (epoll), handing each accepted socket to JS as (listener id, fd).
 * A batch of ports is bound in one call, all or nothing: a 1000-port range costs a few thousand
 * syscalls instead of a thousand libuv handles and JS servers. Each listener counts its live
 * connections against a per-port limit and a proxyBudget; a connection over either is accepted
 * and reset at once, here (JS never sees it), and JS hears of it at most once a second.
 * Making one grows the fd table ahead (cnmkit_grow_fd_table). This file is the thread's side and
 * the delivery to JS; acceptor-js.c what JS calls.
 * Limits: Linux only; TCP only (IPv4, or IPv6 with or without v6only); fds below 2^24. Accepted
 * fds belong to JS from delivery on (it calls release(id) and the budget's releaseTcp() when
 * each ends); an accept that JS can no longer take is closed here. When accept fails for lack of
 * fds the thread reports it and pauses 50 ms instead of spinning.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"

uint64_t acceptor_make_id(uint32_t serial, int fd) { return (uint64_t)serial * FD_LIMIT + (uint64_t)fd; }

/* False when JS cannot be told (the environment is going away). */
static bool send_to_js(acceptor_t *a, uint64_t id, int fd, int hit, cnmkit_budget_t *budget) {
  accepted_t *msg = malloc(sizeof *msg);
  if (msg == NULL) return false;
  *msg = (accepted_t){ .id = id, .fd = fd, .hit = hit, .budget = cnmkit_budget_ref(budget) };
  if (napi_call_threadsafe_function(a->deliver, msg, napi_tsfn_nonblocking) == napi_ok) return true;
  cnmkit_budget_unref(budget);
  free(msg);
  return false;
}

/* Hands fd to JS counted against its listener and budget, or resets it when a limit is reached
 * (lock held). */
static void admit(acceptor_t *a, entry_t *e, uint64_t id, int fd) {
  int hit = -1;
  if (e->active >= e->limit) {
    hit = CNMKIT_HIT_PER_PORT;
    cnmkit_budget_hit(e->budget, CNMKIT_HIT_PER_PORT);
  } else if (!cnmkit_budget_acquire(e->budget, false)) {
    hit = CNMKIT_HIT_MAX_CONNECTIONS;
  }
  if (hit < 0) {
    e->active += 1;
    if (send_to_js(a, id, fd, -1, e->budget)) return;
    e->active -= 1;
    cnmkit_budget_release(e->budget, false);
    close(fd);
    return;
  }
  cnmkit_close_reset(fd);
  int64_t now = cnmkit_now_ms();
  int slot = hit == CNMKIT_HIT_PER_PORT ? 1 : 0;
  if (now - a->last_notice[slot] < NOTICE_MS) return;
  a->last_notice[slot] = now;
  send_to_js(a, id, -1, hit, NULL);
}

/* Accepts what listener id has queued; false when the thread should back off (out of fds). */
static bool accept_some(acceptor_t *a, uint64_t id) {
  int lfd = (int)(id % FD_LIMIT);
  uint32_t serial = (uint32_t)(id / FD_LIMIT);
  bool ok = true;
  pthread_mutex_lock(&a->lock);
  for (int i = 0; i < ACCEPTS_PER_EVENT && (size_t)lfd < a->slots && a->entries[lfd].serial == serial; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      admit(a, &a->entries[lfd], id, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN) {
      send_to_js(a, id, -errno, -1, NULL);
      ok = false;
    }
    break;
  }
  pthread_mutex_unlock(&a->lock);
  return ok;
}

void *acceptor_main(void *arg) {
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

/* An admitted fd JS did not take: closed, its place in the budget given back. */
static void drop_accepted(accepted_t *msg) {
  if (msg->fd < 0) return;
  close(msg->fd);
  cnmkit_budget_release(msg->budget, false);
}

/* Runs on the JS thread: onAccept(id, fd), onAccept(id, -1, error) or onAccept(id, -1, undefined, hit).
 * An fd is JS's only when onAccept returns true. */
void acceptor_deliver(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  accepted_t *msg = data;
  napi_value argv[4], undefined, result;
  bool taken = false;
  if (env == NULL || cb == NULL) {
    drop_accepted(msg);
    cnmkit_budget_unref(msg->budget);
    free(msg);
    return;
  }
  napi_get_undefined(env, &undefined);
  napi_create_int64(env, (int64_t)msg->id, &argv[0]);
  napi_create_int32(env, msg->fd >= 0 ? msg->fd : -1, &argv[1]);
  argv[2] = msg->fd < 0 && msg->hit < 0 ? cnmkit_errno_error(env, -msg->fd, "accept4", NULL) : undefined;
  if (msg->hit >= 0) napi_create_string_utf8(env, cnmkit_hit_name((cnmkit_hit_t)msg->hit), NAPI_AUTO_LENGTH, &argv[3]);
  else argv[3] = undefined;
  if (napi_call_function(env, undefined, cb, 4, argv, &result) == napi_ok) napi_get_value_bool(env, result, &taken);
  if (!taken) drop_accepted(msg);
  cnmkit_budget_unref(msg->budget);
  free(msg);
}

/* Forgets the listener in e (lock held); its socket is the caller's to close. */
void acceptor_clear_entry(acceptor_t *a, entry_t *e) {
  cnmkit_budget_unref(e->budget);
  *e = (entry_t){ 0 };
  a->listeners -= 1;
}

