/*
 * udpForwarder(onLimit): what JS calls of the UDP forwarder (see udp.c for what it serves) —
 * listen(...) binds a range all or nothing, close(ids) frees ports at once; onLimit(id, reason)
 * hears of limit hits. Limits: as udp.c; it keeps Node's event loop alive while it listens.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "udp.h"

/* Runs on the JS thread: onLimit(id, reason). */
static void deliver(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  notice_t *n = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[2], undefined;
    napi_create_int64(env, (int64_t)n->id, &argv[0]);
    napi_create_string_utf8(env, cnmkit_hit_name((cnmkit_hit_t)n->hit), NAPI_AUTO_LENGTH, &argv[1]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, cb, 2, argv, NULL);
  }
  free(n);
}

static void udp_stop(udp_t *u) {
  if (u->stopping) return;
  u->stopping = true;
  uint64_t one = 1;
  if (write(u->wake_fd, &one, sizeof one) < 0) { /* the thread is gone already */ }
  if (u->thread_started) pthread_join(u->thread, NULL);
  for (size_t fd = 0; fd < u->nslots; fd++)
    if (u->slots[fd].serial != 0 && !u->slots[fd].is_flow) udp_close_listener(u, u->slots[fd].obj);
  close(u->epoll_fd);
  close(u->wake_fd);
  napi_release_threadsafe_function(u->notify, napi_tsfn_abort);
}

static void cleanup_hook(void *arg) { udp_stop(arg); }

static void udp_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  udp_t *u = data;
  udp_stop(u);
  napi_remove_env_cleanup_hook(env, cleanup_hook, u);
  free(u->slots);
  pthread_mutex_destroy(&u->lock);
  free(u);
}

/* Keeps Node's event loop alive exactly while something listens (like a dgram socket). */
static void update_ref(udp_t *u) {
  bool want = u->listeners > 0 && !u->stopping;
  if (want == u->referenced) return;
  if (want) napi_ref_threadsafe_function(u->env, u->notify);
  else napi_unref_threadsafe_function(u->env, u->notify);
  u->referenced = want;
}

static udp_t *unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  udp_t *u = cnmkit_unwrap_this(env, info, argc, argv, "a UDP forwarder");
  if (u != NULL && u->stopping) {
    cnmkit_throw_errno(env, EBADF, "udpForwarder", NULL);
    return NULL;
  }
  return u;
}

/* Binds first + i and watches it as a listener forwarding to target port tport + i (lock held). */
static int add_listener(udp_t *u, const struct sockaddr_storage *at, socklen_t alen, int port, bool v6only,
                        const listener_t *proto, int tport, uint64_t *id, const char **syscall) {
  int fd = cnmkit_bind_port(at, alen, port, SOCK_DGRAM, v6only, syscall);
  if (fd < 0) return -fd;
  listener_t *l = malloc(sizeof *l);
  if (l == NULL) return close(fd), *syscall = "malloc", ENOMEM;
  *l = *proto;
  l->fd = fd;
  cnmkit_set_port(&l->target, tport);
  if ((*id = udp_watch(u, fd, false, l)) == 0) {
    int err = errno;
    close(fd);
    free(l);
    return *syscall = "epoll_ctl", err;
  }
  cnmkit_budget_ref(l->budget);
  u->listeners += 1;
  return 0;
}

/*
 * udp.listen(address, firstPort, count, ipv6Only, containerIP, containerPort, budget, perPortLimit,
 * idleMs): binds firstPort .. firstPort+count-1, each forwarding to containerPort + i, and returns
 * their ids in port order. All or nothing: the error (errno, code, syscall, port) is thrown.
 */
static napi_value udp_listen(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  udp_t *u = unwrap_this(env, info, &argc, argv);
  if (u == NULL) return NULL;
  int32_t first = 0, count = 0, tport = 0;
  int64_t idle = 0;
  bool v6only = false;
  listener_t proto = { .fd = -1 };
  struct sockaddr_storage at;
  socklen_t alen;
  if (argc < 9 || napi_get_value_int32(env, argv[1], &first) != napi_ok || napi_get_value_int32(env, argv[2], &count) != napi_ok ||
      napi_get_value_bool(env, argv[3], &v6only) != napi_ok || napi_get_value_int32(env, argv[5], &tport) != napi_ok ||
      napi_get_value_uint32(env, argv[7], &proto.limit) != napi_ok || napi_get_value_int64(env, argv[8], &idle) != napi_ok || idle < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (address, firstPort, count, ipv6Only, containerIP, containerPort, budget, perPortLimit, idleMs)");
    return NULL;
  }
  if ((proto.budget = cnmkit_budget_arg(env, argv[6])) == NULL || cnmkit_address_arg(env, argv[0], &at, &alen) != 0 ||
      cnmkit_address_arg(env, argv[4], &proto.target, &proto.tlen) != 0)
    return NULL;
  if (first < 1 || count < 1 || first + count - 1 > 65535 || tport < 1 || tport + count - 1 > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "ports must lie in 1-65535");
    return NULL;
  }
  proto.idle_ms = idle;
  uint64_t *ids = malloc((size_t)count * sizeof *ids);
  if (ids == NULL) { cnmkit_throw_errno(env, ENOMEM, "malloc", NULL); return NULL; }
  const char *syscall = NULL;
  int err = 0, opened = 0;
  pthread_mutex_lock(&u->lock);
  for (; opened < count && err == 0; opened++) err = add_listener(u, &at, alen, first + opened, v6only, &proto, tport + opened, &ids[opened], &syscall);
  if (err != 0) {
    for (int i = 0; i < opened - 1; i++) udp_close_listener(u, udp_slot_of(u, ids[i])->obj);
  } else if (idle / 4 < u->tick_ms) {
    u->tick_ms = idle / 4 < 10 ? 10 : idle / 4;
  }
  pthread_mutex_unlock(&u->lock);
  napi_value out = NULL, v;
  if (err != 0) cnmkit_throw_port_error(env, err, syscall, first + opened - 1);
  else napi_create_array_with_length(env, (size_t)count, &out);
  for (int i = 0; err == 0 && i < count; i++) {
    napi_create_int64(env, (int64_t)ids[i], &v);
    napi_set_element(env, out, (uint32_t)i, v);
  }
  free(ids);
  update_ref(u);
  return out;
}

/* udp.close(ids): closes each listener and its flows; the ports are free on return. */
static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_array = false;
  uint32_t n = 0;
  udp_t *u = unwrap_this(env, info, &argc, argv);
  if (u == NULL) return NULL;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an array of listener ids");
    return NULL;
  }
  napi_get_array_length(env, argv[0], &n);
  pthread_mutex_lock(&u->lock);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int64_t id = 0;
    slot_t *s = NULL;
    if (napi_get_element(env, argv[0], i, &v) == napi_ok && napi_get_value_int64(env, v, &id) == napi_ok && id > 0 &&
        (s = udp_slot_of(u, (uint64_t)id)) != NULL && !s->is_flow)
      udp_close_listener(u, s->obj);
  }
  pthread_mutex_unlock(&u->lock);
  update_ref(u);
  return NULL;
}

static int udp_init(napi_env env, udp_t *u, napi_value cb, const char **syscall) {
  napi_value name;
  struct epoll_event wake = { .events = EPOLLIN, .data.u64 = 0 };
  u->env = env;
  u->next_serial = 1;
  u->tick_ms = TICK_MS;
  pthread_mutex_init(&u->lock, NULL);
  u->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  *syscall = u->epoll_fd < 0 ? "epoll_create1" : u->wake_fd < 0 ? "eventfd" : "epoll_ctl";
  if (u->epoll_fd < 0 || u->wake_fd < 0 || epoll_ctl(u->epoll_fd, EPOLL_CTL_ADD, u->wake_fd, &wake) != 0) return errno;
  napi_create_string_utf8(env, "cnmkit:udpForwarder", NAPI_AUTO_LENGTH, &name);
  *syscall = "napi_create_threadsafe_function";
  if (napi_create_threadsafe_function(env, cb, NULL, name, 0, 1, NULL, NULL, u, deliver, &u->notify) != napi_ok) return ENOMEM;
  napi_unref_threadsafe_function(env, u->notify);
  *syscall = "pthread_create";
  int err = cnmkit_thread_start(&u->thread, NULL, udp_main, u);
  if (err != 0) napi_release_threadsafe_function(u->notify, napi_tsfn_abort);
  u->thread_started = err == 0;
  return err;
}

/* udpForwarder(onLimit): a forwarder with its thread running and nothing bound. */
static napi_value udp_forwarder(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], handle, fn;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 0)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (onLimit)");
    return NULL;
  }
  udp_t *u = calloc(1, sizeof *u);
  if (u == NULL) { cnmkit_throw_errno(env, ENOMEM, "calloc", NULL); return NULL; }
  const char *syscall = NULL;
  int err = udp_init(env, u, argv[0], &syscall);
  if (err != 0) {
    if (u->epoll_fd >= 0) close(u->epoll_fd);
    if (u->wake_fd >= 0) close(u->wake_fd);
    pthread_mutex_destroy(&u->lock);
    free(u);
    cnmkit_throw_errno(env, err, syscall, NULL);
    return NULL;
  }
  napi_create_object(env, &handle);
  napi_create_function(env, "listen", NAPI_AUTO_LENGTH, udp_listen, NULL, &fn);
  napi_set_named_property(env, handle, "listen", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, udp_close, NULL, &fn);
  napi_set_named_property(env, handle, "close", fn);
  napi_wrap(env, handle, u, udp_finalize, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup_hook, u);
  return handle;
}

void cnmkit_udp_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "udpForwarder", NAPI_AUTO_LENGTH, udp_forwarder, NULL, &fn);
  napi_set_named_property(env, exports, "udpForwarder", fn);
}
