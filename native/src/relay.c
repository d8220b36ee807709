/*
 * The splice relay's machinery (see splice.c for what it does): a direction's pump over a pooled
 * pipe or a copy buffer, the ready list, the command queue, and the engine's loops and threads.
 * Limits: Linux only; a pipe's size is what F_SETPIPE_SZ grants (pipe-max-size may cap it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

#define PIPE_BYTES (1024 * 1024)
#define COPY_BYTES (64 * 1024)
#define TICK_MS 1000

relay_t *relay_new(int a, int b, int64_t idle_ms, cnmkit_budget_t *budget) {
  relay_t *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  atomic_init(&r->refs, 2);
  r->fd[0] = a;
  r->fd[1] = b;
  r->idle_ms = idle_ms;
  r->budget = cnmkit_budget_ref(budget);
  for (int i = 0; i < 2; i++) r->dir[i].pipe_r = r->dir[i].pipe_w = -1;
  return r;
}

void relay_unref(relay_t *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  cnmkit_budget_unref(r->budget);
  free(r);
}

/* Gives the direction a pipe (pooled or new, within the loop's cap) or else a buffer. */
static int storage_get(loop_t *l, dir_t *p) {
  if (l->pooled > 0) {
    pipe_t pp = l->pool[--l->pooled];
    p->pipe_r = pp.r, p->pipe_w = pp.w, p->cap = pp.cap;
    return 0;
  }
  int fds[2];
  if (l->pipes < PIPES_PER_LOOP && pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES);
    int size = fcntl(fds[1], F_GETPIPE_SZ);
    p->pipe_r = fds[0], p->pipe_w = fds[1], p->cap = size > 0 ? (size_t)size : 65536;
    l->pipes += 1;
    return 0;
  }
  if ((p->buf = malloc(COPY_BYTES)) == NULL) return ENOMEM;
  p->cap = COPY_BYTES;
  p->off = 0;
  return 0;
}

static bool storage_has(const dir_t *p) { return p->pipe_r >= 0 || p->buf != NULL; }

static void close_pipe(loop_t *l, int r, int w) {
  close(r);
  close(w);
  l->pipes -= 1;
}

/* An empty direction's storage goes back: its pipe to the pool (or closed when the pool is full), its buffer freed. */
static void storage_put(loop_t *l, dir_t *p) {
  if (p->pipe_r >= 0 && l->pooled < POOL_KEEP) l->pool[l->pooled++] = (pipe_t){ .r = p->pipe_r, .w = p->pipe_w, .cap = p->cap };
  else if (p->pipe_r >= 0) close_pipe(l, p->pipe_r, p->pipe_w);
  p->pipe_r = p->pipe_w = -1;
  free(p->buf);
  p->buf = NULL;
}

void storage_drop(loop_t *l, dir_t *p) {
  if (p->queued > 0 && p->pipe_r >= 0) {
    close_pipe(l, p->pipe_r, p->pipe_w);
    p->pipe_r = p->pipe_w = -1;
  }
  p->queued = 0;
  storage_put(l, p);
}

void pool_trim(loop_t *l) {
  while (l->pooled > 0 && (size_t)l->pooled > 2 * l->relays) {
    pipe_t pp = l->pool[--l->pooled];
    close_pipe(l, pp.r, pp.w);
  }
}

/* in → storage, at most room bytes: > 0 moved, 0 EOF, -1 with errno. */
static ssize_t fill(dir_t *p, int in, size_t room) {
  if (p->pipe_r >= 0) return splice(in, NULL, p->pipe_w, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  return read(in, p->buf + p->off + p->queued, room);
}

/* storage → out: > 0 moved, else -1 with errno (EAGAIN when out is full). */
static ssize_t drain(dir_t *p, int out) {
  ssize_t n = p->pipe_r >= 0 ? splice(p->pipe_r, NULL, out, NULL, p->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                             : send(out, p->buf + p->off, p->queued, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == 0) errno = EAGAIN;
  if (n <= 0) return -1;
  if (p->buf != NULL) p->off = (size_t)n == p->queued ? 0 : p->off + (size_t)n;
  return n;
}

/* Reads in → storage once; false when nothing moved. A splice EAGAIN with bytes queued may mean
 * a full pipe, not an empty socket: the socket stays readable until the pipe is empty. */
static int pump_in(loop_t *l, relay_t *r, int d, bool *progress, const char **syscall) {
  dir_t *p = &r->dir[d];
  if (p->eof || !r->can_read[d]) return 0;
  if (!storage_has(p) && storage_get(l, p) != 0) {
    *syscall = "malloc";
    return ENOMEM;
  }
  size_t room = p->pipe_r >= 0 ? p->cap - p->queued : p->cap - p->off - p->queued;
  if (room == 0) return 0;
  ssize_t n = fill(p, r->fd[d], room);
  if (n >= 0) {
    p->queued += (size_t)n;
    p->eof = n == 0;
    *progress = true;
  } else if (errno == EAGAIN) {
    if (p->queued == 0 || p->pipe_r < 0) r->can_read[d] = false;
  } else if (errno != EINTR) {
    *syscall = p->pipe_r >= 0 ? "splice" : "read";
    return errno;
  }
  return 0;
}

int pump(loop_t *l, relay_t *r, int d, size_t turn, int64_t now, bool *more, const char **syscall) {
  dir_t *p = &r->dir[d];
  int out = r->fd[1 - d];
  size_t moved = 0;
  while (moved < turn) {
    bool progress = false;
    int err = pump_in(l, r, d, &progress, syscall);
    if (err != 0) return err;
    if (p->queued > 0 && r->can_write[1 - d]) {
      bool piped = p->pipe_r >= 0;
      ssize_t n = drain(p, out);
      if (n > 0) {
        p->queued -= (size_t)n;
        moved += (size_t)n;
        atomic_fetch_add_explicit(&p->bytes, (uint64_t)n, memory_order_relaxed);
        if (r->budget) cnmkit_budget_bytes(r->budget, d == 0, (uint64_t)n);
        r->last_ms = now;
        progress = true;
      } else if (errno == EAGAIN) {
        r->can_write[1 - d] = false;
      } else if (errno != EINTR) {
        *syscall = piped ? "splice" : "send";
        return errno;
      }
    }
    if (p->queued == 0 && storage_has(p) && (p->eof || !r->can_read[d])) storage_put(l, p);
    if (p->eof && p->queued == 0 && !p->shut) {
      if (shutdown(out, SHUT_WR) != 0 && errno != ENOTCONN) {
        *syscall = "shutdown";
        return errno;
      }
      p->shut = true;
    }
    if (!progress) return 0;
  }
  *more = true;
  return 0;
}

void ready_add(loop_t *l, relay_t *r) {
  r->ready = true;
  r->ready_next = NULL;
  r->ready_prev = l->ready_tail;
  if (l->ready_tail) l->ready_tail->ready_next = r;
  else l->ready_head = r;
  l->ready_tail = r;
}

void ready_remove(loop_t *l, relay_t *r) {
  if (r->ready_prev) r->ready_prev->ready_next = r->ready_next;
  else l->ready_head = r->ready_next;
  if (r->ready_next) r->ready_next->ready_prev = r->ready_prev;
  else l->ready_tail = r->ready_prev;
  r->ready = false;
  r->ready_prev = r->ready_next = NULL;
}

bool loop_queue(loop_t *l, relay_t *r, bool cancel) {
  command_t *c = malloc(sizeof *c);
  if (c == NULL) return false;
  *c = (command_t){ .relay = r, .cancel = cancel };
  if (cancel) atomic_fetch_add(&r->refs, 1);
  else r->loop = l;
  pthread_mutex_lock(&l->qlock);
  if (l->commands_tail) l->commands_tail->next = c;
  else l->commands = c;
  l->commands_tail = c;
  pthread_mutex_unlock(&l->qlock);
  uint64_t one = 1;
  if (write(l->wake_fd, &one, sizeof one) < 0) { /* already signalled */ }
  return true;
}

static int loop_init(engine_t *e, loop_t *l, const char **syscall) {
  l->engine = e;
  l->tick_ms = TICK_MS;
  l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&l->qlock, NULL);
  struct epoll_event wake = { .events = EPOLLIN, .data.ptr = WAKE_TAG };
  *syscall = l->epoll_fd < 0 ? "epoll_create1" : l->wake_fd < 0 ? "eventfd" : "epoll_ctl";
  if (l->epoll_fd < 0 || l->wake_fd < 0 || epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &wake) != 0) return errno;
  *syscall = "pthread_create";
  int err = cnmkit_thread_start(&l->thread, NULL, loop_main, l);
  l->started = err == 0;
  return err;
}

/* Drops every relay of a list without a report (the environment is going away). */
static void drop_all(napi_env env, loop_t *l, relay_t *r) {
  for (relay_t *next; r != NULL; r = next) {
    next = r->next;
    for (int i = 0; i < 2; i++) storage_drop(l, &r->dir[i]);
    if (r->done) napi_delete_reference(env, r->done);
    r->done = NULL;
    relay_unref(r);
  }
}

static void loop_stop(napi_env env, loop_t *l) {
  atomic_store(&l->stop, true);
  uint64_t one = 1;
  if (l->wake_fd >= 0 && write(l->wake_fd, &one, sizeof one) < 0) { /* the thread is gone */ }
  if (l->started) pthread_join(l->thread, NULL);
  drop_all(env, l, l->live);
  drop_all(env, l, l->finished);
  for (command_t *c = l->commands, *next; c != NULL; c = next) {
    next = c->next;
    if (!c->cancel) c->relay->next = NULL;
    if (!c->cancel) drop_all(env, l, c->relay);
    else relay_unref(c->relay);
    free(c);
  }
  while (l->pooled > 0) {
    pipe_t pp = l->pool[--l->pooled];
    close_pipe(l, pp.r, pp.w);
  }
  if (l->epoll_fd >= 0) close(l->epoll_fd);
  if (l->wake_fd >= 0) close(l->wake_fd);
  pthread_mutex_destroy(&l->qlock);
}

static void engine_stop(void *arg) {
  engine_t *e = arg;
  for (int i = 0; i < e->loops; i++) loop_stop(e->env, &e->loop[i]);
  napi_release_threadsafe_function(e->done, napi_tsfn_abort);
  free(e);
}

engine_t *engine_start(napi_env env, int loops, napi_threadsafe_function_call_js deliver, int *err, const char **syscall) {
  engine_t *e = calloc(1, sizeof *e + (size_t)loops * sizeof(loop_t));
  napi_value name;
  if (e == NULL) {
    *err = ENOMEM, *syscall = "calloc";
    return NULL;
  }
  e->env = env;
  for (int i = 0; i < loops; i++) e->loop[i].epoll_fd = e->loop[i].wake_fd = -1;
  napi_create_string_utf8(env, "cnmkit:spliceRelay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, e, deliver, &e->done) != napi_ok) {
    free(e);
    *err = ENOMEM, *syscall = "napi_create_threadsafe_function";
    return NULL;
  }
  napi_unref_threadsafe_function(env, e->done);
  *err = 0;
  for (e->loops = 0; e->loops < loops && *err == 0; e->loops++) *err = loop_init(e, &e->loop[e->loops], syscall);
  if (*err != 0) {
    engine_stop(e);
    return NULL;
  }
  napi_set_instance_data(env, e, NULL, NULL);
  napi_add_env_cleanup_hook(env, engine_stop, e);
  return e;
}

loop_t *engine_pick(engine_t *e) { return &e->loop[e->next++ % (unsigned)e->loops]; }

void engine_js_start(engine_t *e, napi_env env) {
  if (e->js_live++ == 0 && !e->referenced) {
    napi_ref_threadsafe_function(env, e->done);
    e->referenced = true;
  }
}

void engine_js_done(engine_t *e, napi_env env) {
  if (--e->js_live == 0 && e->referenced) {
    napi_unref_threadsafe_function(env, e->done);
    e->referenced = false;
  }
}
