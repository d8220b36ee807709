/*
 * tcpAcceptor(onAccept): what JS calls of the TCP acceptor (see acceptor.c for what its thread
 * does) — listen(...) binds a range all or nothing, close(ids) frees ports at once, release(id)
 * gives a connection's place back. Limits: as acceptor.c; it keeps Node's event loop alive while
 * it listens.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"

/* The thread stops, every listening fd closes; pending deliveries close their fds. */
static void acceptor_stop(acceptor_t *a) {
  pthread_mutex_lock(&a->lock);
  bool was = a->stopping;
  a->stopping = true;
  pthread_mutex_unlock(&a->lock);
  if (was) return;
  uint64_t one = 1;
  if (write(a->wake_fd, &one, sizeof one) < 0) { /* the thread is gone already */ }
  if (a->thread_started) pthread_join(a->thread, NULL);
  for (size_t fd = 0; fd < a->slots; fd++) {
    if (a->entries[fd].serial == 0) continue;
    acceptor_clear_entry(a, &a->entries[fd]);
    close((int)fd);
  }
  close(a->epoll_fd);
  close(a->wake_fd);
  napi_release_threadsafe_function(a->deliver, napi_tsfn_abort);
}

static void cleanup_hook(void *arg) { acceptor_stop(arg); }

static void acceptor_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  acceptor_t *a = data;
  acceptor_stop(a);
  napi_remove_env_cleanup_hook(env, cleanup_hook, a);
  free(a->entries);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

/* Keeps Node's event loop alive exactly while something listens (like a net.Server). */
static void update_ref(acceptor_t *a) {
  bool want = a->listeners > 0 && !a->stopping;
  if (want == a->tsfn_referenced) return;
  if (want) napi_ref_threadsafe_function(a->env, a->deliver);
  else napi_unref_threadsafe_function(a->env, a->deliver);
  a->tsfn_referenced = want;
}

static acceptor_t *unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  acceptor_t *a = cnmkit_unwrap_this(env, info, argc, argv, "a TCP acceptor");
  if (a == NULL) return NULL;
  if (a->stopping) {
    cnmkit_throw_errno(env, EBADF, "acceptor", NULL);
    return NULL;
  }
  return a;
}

/* Makes room for fd in the entries table (lock held). */
static int ensure_slot(acceptor_t *a, int fd) {
  if ((size_t)fd < a->slots) return 0;
  size_t slots = a->slots == 0 ? 1024 : a->slots;
  while (slots <= (size_t)fd) slots *= 2;
  entry_t *grown = realloc(a->entries, slots * sizeof *grown);
  if (grown == NULL) return ENOMEM;
  memset(grown + a->slots, 0, (slots - a->slots) * sizeof *grown);
  a->entries = grown;
  a->slots = slots;
  return 0;
}

/* Binds and listens on count ports from first; returns how many it opened (all, or up to the
 * failing one, whose errno and syscall are set). */
static int bind_all(const struct sockaddr_storage *sa, socklen_t len, int first, int count, bool v6only, int backlog,
                    int *fds, int *err, const char **syscall) {
  int opened = 0;
  for (; opened < count; opened++) {
    int fd = cnmkit_bind_port(sa, len, first + opened, SOCK_STREAM, v6only, syscall);
    if (fd >= 0 && listen(fd, backlog) != 0) {
      *err = errno;
      *syscall = "listen";
      close(fd);
      break;
    }
    if (fd < 0) { *err = -fd; break; }
    fds[opened] = fd;
  }
  return opened;
}

/* Watches the count listening fds, filling ids; all or nothing (lock held). Returns an errno. */
static int watch_all(acceptor_t *a, napi_env env, const int *fds, int count, cnmkit_budget_t *budget, uint32_t per_port,
                     napi_value ids, const char **syscall) {
  int err = 0;
  for (int i = 0; i < count && err == 0; i++) {
    if ((err = ensure_slot(a, fds[i])) != 0) { *syscall = "realloc"; break; }
    uint32_t serial = a->next_serial;
    a->next_serial = a->next_serial + 1 >= SERIAL_LIMIT ? 1 : a->next_serial + 1;
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = acceptor_make_id(serial, fds[i]) };
    if (epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, fds[i], &ev) != 0) { err = errno; *syscall = "epoll_ctl"; break; }
    a->entries[fds[i]] = (entry_t){ .serial = serial, .limit = per_port, .budget = cnmkit_budget_ref(budget) };
    a->listeners += 1;
    napi_value v;
    napi_create_int64(env, (int64_t)ev.data.u64, &v);
    napi_set_element(env, ids, (uint32_t)i, v);
  }
  for (int i = 0; err != 0 && i < count; i++) {
    if ((size_t)fds[i] >= a->slots || a->entries[fds[i]].serial == 0) continue;
    epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, fds[i], NULL);
    acceptor_clear_entry(a, &a->entries[fds[i]]);
  }
  return err;
}

/*
 * acceptor.listen(address, firstPort, count, ipv6Only, backlog, budget, perPortLimit): binds
 * firstPort .. firstPort+count-1 on address and returns their listener ids in port order. All or
 * nothing: on the first failure the sockets of this call are closed and the error (errno, code,
 * syscall, port) is thrown.
 */
static napi_value acceptor_listen(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], ids = NULL;
  acceptor_t *a = unwrap_this(env, info, &argc, argv);
  if (a == NULL) return NULL;
  int32_t first = 0, count = 0, backlog = 511;
  uint32_t per_port = 0;
  bool v6only = false;
  if (argc < 7 || napi_get_value_int32(env, argv[1], &first) != napi_ok || napi_get_value_int32(env, argv[2], &count) != napi_ok ||
      napi_get_value_bool(env, argv[3], &v6only) != napi_ok || napi_get_value_int32(env, argv[4], &backlog) != napi_ok ||
      napi_get_value_uint32(env, argv[6], &per_port) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (address, firstPort, count, ipv6Only, backlog, budget, perPortLimit)");
    return NULL;
  }
  struct sockaddr_storage sa;
  socklen_t len;
  cnmkit_budget_t *budget = cnmkit_budget_arg(env, argv[5]);
  if (budget == NULL || cnmkit_address_arg(env, argv[0], &sa, &len) != 0) return NULL;
  if (first < 1 || count < 1 || first + count - 1 > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "ports must lie in 1-65535");
    return NULL;
  }
  int *fds = malloc((size_t)count * sizeof *fds);
  if (fds == NULL) { cnmkit_throw_errno(env, ENOMEM, "malloc", NULL); return NULL; }
  const char *syscall = NULL;
  int err = 0, opened = bind_all(&sa, len, first, count, v6only, backlog, fds, &err, &syscall);
  if (err == 0) {
    napi_create_array_with_length(env, (size_t)count, &ids);
    pthread_mutex_lock(&a->lock);
    err = watch_all(a, env, fds, count, budget, per_port, ids, &syscall);
    pthread_mutex_unlock(&a->lock);
  }
  for (int i = 0; err != 0 && i < opened; i++) close(fds[i]);
  free(fds);
  if (err != 0) {
    cnmkit_throw_port_error(env, err, syscall, opened < count ? first + opened : first);
    return NULL;
  }
  update_ref(a);
  return ids;
}

/* The live entry of listener id (lock held), or NULL. */
static entry_t *entry_of(acceptor_t *a, int64_t id) {
  if (id <= 0) return NULL;
  size_t fd = (size_t)((uint64_t)id % FD_LIMIT);
  uint32_t serial = (uint32_t)((uint64_t)id / FD_LIMIT);
  return fd < a->slots && a->entries[fd].serial == serial ? &a->entries[fd] : NULL;
}

/* acceptor.close(ids): stops listening on each id and closes its socket; unknown ids are skipped. */
static napi_value acceptor_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  acceptor_t *a = unwrap_this(env, info, &argc, argv);
  if (a == NULL) return NULL;
  bool is_array = false;
  uint32_t n = 0;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an array of listener ids");
    return NULL;
  }
  napi_get_array_length(env, argv[0], &n);
  pthread_mutex_lock(&a->lock);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int64_t id = 0;
    entry_t *e = NULL;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || napi_get_value_int64(env, v, &id) != napi_ok || (e = entry_of(a, id)) == NULL) continue;
    int fd = (int)(e - a->entries);
    epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    acceptor_clear_entry(a, e);
    close(fd);
  }
  pthread_mutex_unlock(&a->lock);
  update_ref(a);
  return NULL;
}

/* acceptor.release(id): a connection accepted on listener id has ended; a closed listener is skipped. */
static napi_value acceptor_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t id = 0;
  acceptor_t *a = unwrap_this(env, info, &argc, argv);
  if (a == NULL) return NULL;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a listener id");
    return NULL;
  }
  pthread_mutex_lock(&a->lock);
  entry_t *e = entry_of(a, id);
  if (e != NULL && e->active > 0) e->active -= 1;
  pthread_mutex_unlock(&a->lock);
  return NULL;
}

/* tcpAcceptor(onAccept): a new acceptor with its thread running and nothing bound. */
static napi_value tcp_acceptor(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], handle, fn, name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!cnmkit_function_arg(env, argc, argv, 0)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (onAccept)");
    return NULL;
  }
  acceptor_t *a = calloc(1, sizeof *a);
  if (a == NULL) { cnmkit_throw_errno(env, ENOMEM, "calloc", NULL); return NULL; }
  a->env = env;
  a->next_serial = 1;
  pthread_mutex_init(&a->lock, NULL);
  a->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event wake = { .events = EPOLLIN, .data.u64 = 0 };
  int err = 0;
  const char *syscall = "epoll_create1";
  if (a->epoll_fd < 0) err = errno;
  else if (a->wake_fd < 0) { err = errno; syscall = "eventfd"; }
  else if (epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, a->wake_fd, &wake) != 0) { err = errno; syscall = "epoll_ctl"; }
  napi_create_string_utf8(env, "cnmkit:tcpAcceptor", NAPI_AUTO_LENGTH, &name);
  if (err == 0 && napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, a, acceptor_deliver, &a->deliver) != napi_ok) {
    err = ENOMEM;
    syscall = "napi_create_threadsafe_function";
  }
  if (err == 0) {
    napi_unref_threadsafe_function(env, a->deliver);
    err = cnmkit_thread_start(&a->thread, NULL, acceptor_main, a);
    if (err != 0) {
      syscall = "pthread_create";
      napi_release_threadsafe_function(a->deliver, napi_tsfn_abort);
    }
  }
  if (err == 0) cnmkit_grow_fd_table(a->epoll_fd, FD_TABLE_SLOTS);
  if (err != 0) {
    if (a->epoll_fd >= 0) close(a->epoll_fd);
    if (a->wake_fd >= 0) close(a->wake_fd);
    pthread_mutex_destroy(&a->lock);
    free(a);
    cnmkit_throw_errno(env, err, syscall, NULL);
    return NULL;
  }
  a->thread_started = true;
  napi_create_object(env, &handle);
  napi_create_function(env, "listen", NAPI_AUTO_LENGTH, acceptor_listen, NULL, &fn);
  napi_set_named_property(env, handle, "listen", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, acceptor_close, NULL, &fn);
  napi_set_named_property(env, handle, "close", fn);
  napi_create_function(env, "release", NAPI_AUTO_LENGTH, acceptor_release, NULL, &fn);
  napi_set_named_property(env, handle, "release", fn);
  napi_wrap(env, handle, a, acceptor_finalize, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup_hook, a);
  return handle;
}

void cnmkit_acceptor_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "tcpAcceptor", NAPI_AUTO_LENGTH, tcp_acceptor, NULL, &fn);
  napi_set_named_property(env, exports, "tcpAcceptor", fn);
}
