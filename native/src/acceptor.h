/*
 * The TCP acceptor's parts shared by acceptor.c (its thread: accept, limits, delivery to JS) and
 * acceptor-js.c (what JS calls: make one, listen, close, release). The lock guards the entries.
 */
#ifndef CNMKIT_ACCEPTOR_H
#define CNMKIT_ACCEPTOR_H

#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cnmkit.h"

/* A listener id: serial * 2^24 + fd, exact in a JS number; 0 is never an id. */
#define FD_LIMIT CNMKIT_FD_LIMIT
#define SERIAL_LIMIT (1u << 28)
#define ACCEPTS_PER_EVENT 64
#define EVENTS 256
#define BACKOFF_US 50000
/* The fd table is grown to this many slots (or the fd limit) when an acceptor is made. */
#define FD_TABLE_SLOTS 32768
/* Limit notices to JS: at most one per reason this often. */
#define NOTICE_MS 1000

/* A listening fd's slot: serial 0 = none. */
typedef struct {
  uint32_t serial;
  uint32_t active; /* connections accepted and not yet released */
  uint32_t limit;  /* per port */
  cnmkit_budget_t *budget;
} entry_t;

typedef struct {
  napi_env env;
  napi_threadsafe_function deliver;
  pthread_t thread;
  bool thread_started;
  int epoll_fd, wake_fd;
  pthread_mutex_t lock;      /* guards entries, listeners and the listening fds' lifetime */
  entry_t *entries;          /* by fd */
  size_t slots;
  int64_t last_notice[2];    /* per hit reason (max-connections, per-port), ms */
  uint32_t next_serial;
  size_t listeners;
  bool stopping;
  bool tsfn_referenced;
} acceptor_t;

/* What one accept hands to JS: fd >= 0, or -errno when accept failed, or a limit notice (hit >= 0). */
typedef struct {
  uint64_t id;
  int fd;
  int hit;
  cnmkit_budget_t *budget; /* referenced while an admitted fd is on its way */
} accepted_t;

uint64_t acceptor_make_id(uint32_t serial, int fd);
/* Forgets the listener in e (lock held); its socket is the caller's to close. */
void acceptor_clear_entry(acceptor_t *a, entry_t *e);
void *acceptor_main(void *arg);
/* The threadsafe function's call_js: onAccept(...) on the JS thread. */
void acceptor_deliver(napi_env env, napi_value cb, void *context, void *data);

#endif
