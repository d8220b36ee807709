/*
 * udpForwarder: published UDP ports held natively and served from one thread (epoll). Each client
 * address gets a flow, a socket connected to the container whose replies go back from the
 * published port; flows count against a per-port limit and a proxyBudget, and end after idleMs
 * without a datagram either way. A batch of ports is bound in one call, all or nothing.
 * Limits: Linux; fds below 2^24; datagrams up to 64 KiB. A datagram over a limit, or one a
 * socket cannot take at once, is dropped (as UDP may); JS hears of limit hits at most once a second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "udp.h"

uint64_t udp_make_id(uint32_t serial, int fd) { return (uint64_t)serial * FD_LIMIT + (uint64_t)fd; }

/* The object of id (lock held), or NULL when that fd now holds something else. */
slot_t *udp_slot_of(udp_t *u, uint64_t id) {
  size_t fd = (size_t)(id % FD_LIMIT);
  uint32_t serial = (uint32_t)(id / FD_LIMIT);
  return serial != 0 && fd < u->nslots && u->slots[fd].serial == serial ? &u->slots[fd] : NULL;
}

/* Records obj on fd and watches it; returns its id, or 0 with errno set. */
uint64_t udp_watch(udp_t *u, int fd, bool is_flow, void *obj) {
  if ((size_t)fd >= u->nslots) {
    size_t n = u->nslots == 0 ? 1024 : u->nslots;
    while (n <= (size_t)fd) n *= 2;
    slot_t *grown = realloc(u->slots, n * sizeof *grown);
    if (grown == NULL) return errno = ENOMEM, 0;
    memset(grown + u->nslots, 0, (n - u->nslots) * sizeof *grown);
    u->slots = grown;
    u->nslots = n;
  }
  uint32_t serial = u->next_serial;
  u->next_serial = serial + 1 >= SERIAL_LIMIT ? 1 : serial + 1;
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = udp_make_id(serial, fd) };
  if (epoll_ctl(u->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) return 0;
  u->slots[fd] = (slot_t){ .serial = serial, .is_flow = is_flow, .obj = obj };
  return ev.data.u64;
}

void udp_unwatch(udp_t *u, int fd) {
  epoll_ctl(u->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
  u->slots[fd] = (slot_t){ 0 };
  close(fd);
}

static size_t hash_addr(const struct sockaddr_storage *sa, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  const unsigned char *p = (const unsigned char *)sa;
  size_t len = sa->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return (size_t)(h & (n - 1));
}

static flow_t **chain_of(listener_t *l, const struct sockaddr_storage *client) { return &l->buckets[hash_addr(client, l->nbuckets)]; }

static void close_flow(udp_t *u, flow_t *f) {
  listener_t *l = f->listener;
  for (flow_t **p = chain_of(l, &f->client); *p != NULL; p = &(*p)->hnext)
    if (*p == f) { *p = f->hnext; break; }
  if (f->prev) f->prev->next = f->next;
  else u->flows = f->next;
  if (f->next) f->next->prev = f->prev;
  udp_unwatch(u, f->fd);
  l->flows -= 1;
  cnmkit_budget_release(l->budget, true);
  free(f);
}

/* Doubles a listener's hash table when it holds as many flows as buckets. */
static void grow_buckets(listener_t *l) {
  if (l->flows < l->nbuckets) return;
  size_t n = l->nbuckets == 0 ? 16 : l->nbuckets * 2;
  flow_t **b = calloc(n, sizeof *b);
  if (b == NULL) return;
  for (size_t i = 0; i < l->nbuckets; i++) {
    for (flow_t *f = l->buckets[i], *next; f != NULL; f = next) {
      next = f->hnext;
      size_t h = hash_addr(&f->client, n);
      f->hnext = b[h];
      b[h] = f;
    }
  }
  free(l->buckets);
  l->buckets = b;
  l->nbuckets = n;
}

static void notify(udp_t *u, uint64_t id, int hit) {
  int slot = hit == CNMKIT_HIT_PER_PORT ? 1 : 0;
  int64_t now = cnmkit_now_ms();
  if (now - u->last_notice[slot] < NOTICE_MS) return;
  u->last_notice[slot] = now;
  notice_t *n = malloc(sizeof *n);
  if (n == NULL) return;
  *n = (notice_t){ .id = id, .hit = hit };
  if (napi_call_threadsafe_function(u->notify, n, napi_tsfn_nonblocking) != napi_ok) free(n);
}

/* A new flow for client on l, or NULL (a limit reached, or no socket to be had). */
static flow_t *open_flow(udp_t *u, listener_t *l, uint64_t lid, const struct sockaddr_storage *client, socklen_t clen, int64_t now) {
  if (l->flows >= l->limit) {
    cnmkit_budget_hit(l->budget, CNMKIT_HIT_PER_PORT);
    return notify(u, lid, CNMKIT_HIT_PER_PORT), NULL;
  }
  if (!cnmkit_budget_acquire(l->budget, true)) return notify(u, lid, CNMKIT_HIT_MAX_CONNECTIONS), NULL;
  flow_t *f = calloc(1, sizeof *f);
  int fd = socket(l->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f == NULL || fd < 0 || fd >= FD_LIMIT || connect(fd, (struct sockaddr *)&l->target, l->tlen) != 0 || udp_watch(u, fd, true, f) == 0) {
    if (fd >= 0) close(fd);
    free(f);
    cnmkit_budget_release(l->budget, true);
    return NULL;
  }
  *f = (flow_t){ .listener = l, .fd = fd, .client = *client, .clen = clen, .last_ms = now, .next = u->flows };
  if (u->flows) u->flows->prev = f;
  u->flows = f;
  l->flows += 1;
  grow_buckets(l);
  flow_t **chain = chain_of(l, client);
  f->hnext = *chain;
  *chain = f;
  return f;
}

static flow_t *find_flow(listener_t *l, const struct sockaddr_storage *client, socklen_t clen) {
  if (l->nbuckets == 0) return NULL;
  for (flow_t *f = *chain_of(l, client); f != NULL; f = f->hnext)
    if (f->clen == clen && memcmp(&f->client, client, clen) == 0) return f;
  return NULL;
}

/* Datagrams from clients to the published port go to each client's flow. */
static void from_clients(udp_t *u, listener_t *l, uint64_t lid, int64_t now) {
  for (int i = 0; i < DATAGRAMS_PER_EVENT; i++) {
    struct sockaddr_storage client;
    socklen_t clen = sizeof client;
    memset(&client, 0, sizeof client);
    ssize_t n = recvfrom(l->fd, u->buf, sizeof u->buf, MSG_DONTWAIT, (struct sockaddr *)&client, &clen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    if (client.ss_family == AF_INET6) ((struct sockaddr_in6 *)&client)->sin6_flowinfo = 0;
    flow_t *f = find_flow(l, &client, clen);
    if (f == NULL && (f = open_flow(u, l, lid, &client, clen, now)) == NULL) continue;
    if (send(f->fd, u->buf, (size_t)n, MSG_DONTWAIT) < 0) {
      if (errno != EAGAIN && errno != ENOBUFS) close_flow(u, f);
      continue;
    }
    f->last_ms = now;
    cnmkit_budget_bytes(l->budget, true, (uint64_t)n);
  }
}

/* Replies from the container go back to the flow's client from the published port. */
static void from_container(udp_t *u, flow_t *f, int64_t now) {
  listener_t *l = f->listener;
  for (int i = 0; i < DATAGRAMS_PER_EVENT; i++) {
    ssize_t n = recv(f->fd, u->buf, sizeof u->buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) close_flow(u, f); /* ECONNREFUSED: nothing listens there */
    if (n < 0) return;
    f->last_ms = now;
    if (sendto(l->fd, u->buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&f->client, f->clen) >= 0)
      cnmkit_budget_bytes(l->budget, false, (uint64_t)n);
  }
}

static void expire_idle(udp_t *u, int64_t now) {
  if (now < u->next_scan) return;
  u->next_scan = now + u->tick_ms;
  for (flow_t *f = u->flows, *next; f != NULL; f = next) {
    next = f->next;
    if (now - f->last_ms >= f->listener->idle_ms) close_flow(u, f);
  }
}

void *udp_main(void *arg) {
  udp_t *u = arg;
  struct epoll_event events[EVENTS];
  for (;;) {
    int n = epoll_wait(u->epoll_fd, events, EVENTS, u->flows != NULL ? (int)u->tick_ms : -1);
    if (n < 0 && errno != EINTR) break;
    int64_t now = cnmkit_now_ms();
    pthread_mutex_lock(&u->lock);
    for (int i = 0; i < n; i++) {
      if (events[i].data.u64 == 0) return pthread_mutex_unlock(&u->lock), NULL; /* the wake eventfd: stop */
      slot_t *s = udp_slot_of(u, events[i].data.u64);
      if (s == NULL) continue;
      if (s->is_flow) from_container(u, s->obj, now);
      else from_clients(u, s->obj, events[i].data.u64, now);
    }
    expire_idle(u, now);
    pthread_mutex_unlock(&u->lock);
  }
  return NULL;
}

/* Closes l's flows and socket and frees it (lock held). */
void udp_close_listener(udp_t *u, listener_t *l) {
  for (size_t i = 0; i < l->nbuckets; i++)
    while (l->buckets[i] != NULL) close_flow(u, l->buckets[i]);
  udp_unwatch(u, l->fd);
  cnmkit_budget_unref(l->budget);
  free(l->buckets);
  free(l);
  u->listeners -= 1;
}
