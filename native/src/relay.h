/*
 * The splice relay's parts shared by splice.c (the JS API and the loop's turn) and relay.c (a
 * direction's pump and its storage, the ready list, the loops and the engine that owns them).
 * Everything in a loop_t and its relays belongs to that loop's thread, except what qlock guards.
 */
#ifndef CNMKIT_RELAY_H
#define CNMKIT_RELAY_H

#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cnmkit.h"

/* Pipes one loop may hold (in use or pooled); past it, directions copy through a buffer. */
#define PIPES_PER_LOOP 128
/* Empty pipes one loop keeps for reuse, at most (and at most two per live relay). */
#define POOL_KEEP 32
/* epoll data of a loop's wake eventfd (a relay's is its address plus 0 or 1). */
#define WAKE_TAG ((void *)1)

typedef struct loop loop_t;
typedef struct engine engine_t;

/* One direction, in → out: bytes in flight sit in a pipe (pipe_r >= 0) or a buffer, or nowhere. */
typedef struct {
  int pipe_r, pipe_w;
  size_t cap;
  char *buf;
  size_t off;
  size_t queued;
  bool eof, shut;
  atomic_ullong bytes;
} dir_t;

enum { RELAY_QUEUED, RELAY_LIVE, RELAY_FINISHED };

/* Aligned to 2 at least: epoll data is the relay's address plus the side (0 or 1). */
typedef struct relay {
  atomic_int refs;               /* the JS handle, the engine (until delivered), queued cancels */
  loop_t *loop;
  int fd[2];
  bool can_read[2], can_write[2];
  dir_t dir[2];                  /* dir[d]: fd[d] → fd[1 - d] */
  int state;
  int err;
  const char *syscall;
  bool cancelled, timed_out;
  bool ready;
  int64_t idle_ms, last_ms;
  cnmkit_budget_t *budget;
  napi_ref done;                 /* JS thread only */
  struct relay *prev, *next;     /* the loop's live list, then its finished list */
  struct relay *ready_prev, *ready_next;
} relay_t;

typedef struct command {
  struct command *next;
  relay_t *relay;
  bool cancel;
} command_t;

typedef struct {
  int r, w;
  size_t cap;
} pipe_t;

struct loop {
  engine_t *engine;
  pthread_t thread;
  bool started;
  int epoll_fd, wake_fd;
  atomic_bool stop;
  pthread_mutex_t qlock;         /* guards commands */
  command_t *commands, *commands_tail;
  relay_t *live, *finished;
  size_t relays;
  relay_t *ready_head, *ready_tail;
  pipe_t pool[POOL_KEEP];
  int pooled, pipes;
  int64_t tick_ms, next_scan;
};

struct engine {
  napi_env env;
  napi_threadsafe_function done;
  int loops;
  unsigned next;
  size_t js_live;                /* relays not yet delivered (JS thread only) */
  bool referenced;
  loop_t loop[];
};

relay_t *relay_new(int a, int b, int64_t idle_ms, cnmkit_budget_t *budget);
void relay_unref(relay_t *r);
void relay_finish(loop_t *l, relay_t *r, int err, const char *syscall);

/* Moves r's direction d until it can move no more (*more stays) or `turn` bytes (*more = true). */
int pump(loop_t *l, relay_t *r, int d, size_t turn, int64_t now, bool *more, const char **syscall);
/* Gives back a direction's pipe or buffer (a pipe with bytes left in it is closed). */
void storage_drop(loop_t *l, dir_t *p);
/* Closes pooled pipes beyond two per live relay. */
void pool_trim(loop_t *l);

void ready_add(loop_t *l, relay_t *r);
void ready_remove(loop_t *l, relay_t *r);

/* Queues r on l (a new relay, or a cancel holding its own reference) and wakes l; false when
 * out of memory (nothing queued). */
bool loop_queue(loop_t *l, relay_t *r, bool cancel);

/* A loop's thread (splice.c). */
void *loop_main(void *arg);

/* Starts loops threads; the engine becomes env's instance data and stops with env. */
engine_t *engine_start(napi_env env, int loops, napi_threadsafe_function_call_js deliver, int *err, const char **syscall);
loop_t *engine_pick(engine_t *e);
/* A relay was handed to JS's care / reported: keeps Node's loop alive while any is live. */
void engine_js_start(engine_t *e, napi_env env);
void engine_js_done(engine_t *e, napi_env env);

#endif
