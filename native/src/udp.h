/*
 * The UDP forwarder's parts shared by udp.c (its thread: flows, datagrams, idle expiry) and
 * udp-js.c (what JS calls: make one, listen, close). The lock guards everything the thread serves.
 */
#ifndef CNMKIT_UDP_H
#define CNMKIT_UDP_H

#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cnmkit.h"

#define FD_LIMIT CNMKIT_FD_LIMIT
#define SERIAL_LIMIT (1u << 28)
#define DATAGRAMS_PER_EVENT 32
#define EVENTS 256
#define NOTICE_MS 1000
#define TICK_MS 1000

typedef struct listener listener_t;

typedef struct flow {
  struct flow *hnext;         /* the listener's hash chain */
  struct flow *prev, *next;   /* every flow of the forwarder, for the idle scan */
  listener_t *listener;
  int fd;
  struct sockaddr_storage client;
  socklen_t clen;
  int64_t last_ms;
} flow_t;

struct listener {
  int fd;
  struct sockaddr_storage target;
  socklen_t tlen;
  uint32_t limit, flows;
  int64_t idle_ms;
  cnmkit_budget_t *budget;
  flow_t **buckets;
  size_t nbuckets;
};

/* What holds an fd: a listener or a flow; serial 0 = nothing. */
typedef struct {
  uint32_t serial;
  bool is_flow;
  void *obj;
} slot_t;

typedef struct {
  napi_env env;
  napi_threadsafe_function notify;
  pthread_t thread;
  bool thread_started, stopping, referenced;
  int epoll_fd, wake_fd;
  pthread_mutex_t lock;       /* held by the thread while it serves; guards everything below */
  slot_t *slots;
  size_t nslots, listeners;
  uint32_t next_serial;
  flow_t *flows;
  int64_t tick_ms, next_scan, last_notice[2];
  char buf[65536];
} udp_t;

typedef struct {
  uint64_t id;
  int hit;
} notice_t;

uint64_t udp_make_id(uint32_t serial, int fd);
/* The slot of id (lock held), or NULL when its fd now holds something else. */
slot_t *udp_slot_of(udp_t *u, uint64_t id);
/* Records obj on fd and watches it (lock held); returns its id, or 0 with errno set. */
uint64_t udp_watch(udp_t *u, int fd, bool is_flow, void *obj);
/* Stops watching fd, forgets it and closes it (lock held). */
void udp_unwatch(udp_t *u, int fd);
/* Closes l's flows and socket and frees it (lock held). */
void udp_close_listener(udp_t *u, listener_t *l);
void *udp_main(void *arg);

#endif
