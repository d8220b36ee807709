/*
 * ICMP echo for `lab check`. icmpSocket() opens a raw ICMP socket in the calling thread's
 * namespace (call it inside runIn for a sandbox's). icmpSweep(jobs, timeoutMs, done) sends one
 * echo request to every target of every job, each on its job's socket, all at once, then waits on
 * a thread of libuv's pool until each has answered or the time is up; done(err, rtts) on the JS
 * thread gives per job each target's round trip in ms, or -1. One process, no exec per ping.
 * Limits: IPv4 only; at most 65535 targets per job; the caller owns and closes the sockets, and
 * runs one sweep per socket at a time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/icmp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cnmkit.h"

typedef struct {
  int fd;
  size_t n;
  uint32_t *addr;          /* network order */
  double *rtt;             /* ms, -1 until answered */
  struct timespec *sent;
} job_t;

typedef struct {
  job_t *jobs;
  size_t njobs;
  int timeout;
  uint16_t id;
  int err;
  const char *syscall;
  napi_ref callback;
  napi_async_work work;
} sweep_t;

static double ms_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

/* The Internet checksum of len bytes, in network order (read byte by byte: no aliasing games). */
static uint16_t checksum(const uint8_t *p, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

/* Sends every echo request; returns how many went out (a refused send leaves its rtt at -1). */
static size_t send_all(sweep_t *s) {
  size_t sent = 0;
  for (size_t j = 0; j < s->njobs; j++) {
    job_t *job = &s->jobs[j];
    for (size_t i = 0; i < job->n; i++) {
      /* type, code, checksum, id, sequence, then 4 bytes naming the job */
      uint8_t pkt[12] = { ICMP_ECHO, 0, 0, 0, (uint8_t)(s->id >> 8), (uint8_t)s->id, (uint8_t)(i >> 8), (uint8_t)i,
                          (uint8_t)(j >> 24), (uint8_t)(j >> 16), (uint8_t)(j >> 8), (uint8_t)j };
      uint16_t sum = checksum(pkt, sizeof pkt);
      memcpy(pkt + 2, &sum, sizeof sum);
      struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = job->addr[i] };
      clock_gettime(CLOCK_MONOTONIC, &job->sent[i]);
      if (sendto(job->fd, &pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)sizeof pkt) sent++;
    }
  }
  return sent;
}

/* Reads every datagram waiting on the job's socket; returns how many targets answered now. */
static size_t read_replies(sweep_t *s, job_t *job) {
  size_t answered = 0;
  char buf[256];
  for (;;) {
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(job->fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
    if (n < 0) break;
    const struct iphdr *ip = (const void *)buf;
    size_t hl = (size_t)ip->ihl * 4;
    if ((size_t)n < hl + sizeof(struct icmphdr)) continue;
    const struct icmphdr *h = (const void *)(buf + hl);
    uint16_t seq = ntohs(h->un.echo.sequence);
    if (h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != s->id || seq >= job->n) continue;
    if (job->addr[seq] != from.sin_addr.s_addr || job->rtt[seq] >= 0) continue;
    job->rtt[seq] = ms_since(&job->sent[seq]);
    answered++;
  }
  return answered;
}

static void sweep_execute(napi_env env, void *data) {
  (void)env;
  sweep_t *s = data;
  size_t pending = send_all(s);
  struct pollfd *fds = calloc(s->njobs, sizeof *fds);
  if (fds == NULL) { s->err = ENOMEM; s->syscall = "calloc"; return; }
  for (size_t j = 0; j < s->njobs; j++) fds[j] = (struct pollfd){ .fd = s->jobs[j].fd, .events = POLLIN };
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (pending > 0) {
    int left = s->timeout - (int)ms_since(&start);
    if (left <= 0) break;
    int r = poll(fds, s->njobs, left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { s->err = errno; s->syscall = "poll"; break; }
    for (size_t j = 0; j < s->njobs; j++) {
      if (fds[j].revents & POLLIN) {
        size_t got = read_replies(s, &s->jobs[j]);
        pending = got > pending ? 0 : pending - got;
      }
    }
  }
  free(fds);
}

static void sweep_free(sweep_t *s) {
  for (size_t j = 0; j < s->njobs; j++) {
    free(s->jobs[j].addr);
    free(s->jobs[j].rtt);
    free(s->jobs[j].sent);
  }
  free(s->jobs);
  free(s);
}

static void sweep_complete(napi_env env, napi_status status, void *data) {
  sweep_t *s = data;
  napi_value cb, undefined, argv[2];
  if (status != napi_ok && s->err == 0) { s->err = ECANCELED; s->syscall = "icmpSweep"; }
  if (s->err != 0) {
    argv[0] = cnmkit_errno_error(env, s->err, s->syscall, NULL);
    napi_get_undefined(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_array_with_length(env, s->njobs, &argv[1]);
    for (size_t j = 0; j < s->njobs; j++) {
      napi_value list, v;
      napi_create_array_with_length(env, s->jobs[j].n, &list);
      for (size_t i = 0; i < s->jobs[j].n; i++) {
        napi_create_double(env, s->jobs[j].rtt[i], &v);
        napi_set_element(env, list, (uint32_t)i, v);
      }
      napi_set_element(env, argv[1], (uint32_t)j, list);
    }
  }
  napi_get_reference_value(env, s->callback, &cb);
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, cb, 2, argv, NULL);
  napi_delete_reference(env, s->callback);
  napi_delete_async_work(env, s->work);
  sweep_free(s);
}

/* Reads one job {fd, targets: string[]}; throws and returns false on a bad one. */
static bool read_job(napi_env env, napi_value v, job_t *job) {
  napi_value fd, targets, t;
  uint32_t n = 0;
  if (napi_get_named_property(env, v, "fd", &fd) != napi_ok || napi_get_value_int32(env, fd, &job->fd) != napi_ok ||
      napi_get_named_property(env, v, "targets", &targets) != napi_ok || napi_get_array_length(env, targets, &n) != napi_ok || n > 65535) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected jobs of {fd, targets: string[]} (at most 65535 targets)");
    return false;
  }
  job->n = n;
  job->addr = calloc(n + 1, sizeof *job->addr);
  job->rtt = calloc(n + 1, sizeof *job->rtt);
  job->sent = calloc(n + 1, sizeof *job->sent);
  if (!job->addr || !job->rtt || !job->sent) { cnmkit_throw_errno(env, ENOMEM, "calloc", NULL); return false; }
  for (uint32_t i = 0; i < n; i++) {
    char text[64];
    size_t len = 0;
    job->rtt[i] = -1;
    if (napi_get_element(env, targets, i, &t) != napi_ok || napi_get_value_string_utf8(env, t, text, sizeof text, &len) != napi_ok ||
        inet_pton(AF_INET, text, &job->addr[i]) != 1) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "a target is not an IPv4 address");
      return false;
    }
  }
  return true;
}

/* icmpSweep(jobs, timeoutMs, done) */
static napi_value icmp_sweep(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name;
  uint32_t njobs = 0;
  int32_t timeout = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 2) || napi_get_array_length(env, argv[0], &njobs) != napi_ok ||
      napi_get_value_int32(env, argv[1], &timeout) != napi_ok || timeout < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (jobs, timeoutMs > 0, done)");
    return NULL;
  }
  sweep_t *s = calloc(1, sizeof *s);
  if (s == NULL || (s->jobs = calloc(njobs + 1, sizeof *s->jobs)) == NULL) {
    free(s);
    cnmkit_throw_errno(env, ENOMEM, "calloc", NULL);
    return NULL;
  }
  s->njobs = njobs;
  s->timeout = timeout;
  s->id = (uint16_t)(getpid() ^ (uintptr_t)s);
  for (uint32_t j = 0; j < njobs; j++) {
    napi_value v;
    napi_get_element(env, argv[0], j, &v);
    if (!read_job(env, v, &s->jobs[j])) { sweep_free(s); return NULL; }
  }
  napi_create_reference(env, argv[2], 1, &s->callback);
  napi_create_string_utf8(env, "cnmkit:icmpSweep", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, sweep_execute, sweep_complete, s, &s->work);
  napi_queue_async_work(env, s->work);
  return NULL;
}

/* icmpSocket(): a raw ICMP socket (echo replies only) in the calling thread's namespace. */
static napi_value icmp_socket(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) { cnmkit_throw_errno(env, errno, "socket", NULL); return NULL; }
  struct icmp_filter filter = { .data = ~(1U << ICMP_ECHOREPLY) };
  if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter) != 0) {
    int err = errno;
    close(fd);
    cnmkit_throw_errno(env, err, "setsockopt", NULL);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

void cnmkit_icmp_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "icmpSocket", NAPI_AUTO_LENGTH, icmp_socket, NULL, &fn);
  napi_set_named_property(env, exports, "icmpSocket", fn);
  napi_create_function(env, "icmpSweep", NAPI_AUTO_LENGTH, icmp_sweep, NULL, &fn);
  napi_set_named_property(env, exports, "icmpSweep", fn);
}
