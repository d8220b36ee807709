/*
 * cnmkit_native: the only code that changes the calling thread's network namespace.
 * It enters a namespace just long enough to run one synchronous step (open a socket,
 * create or bind-mount a namespace) and returns to the home namespace in every case.
 * Limits: Linux only; acts on the calling thread (Node's main thread), never on libuv's pool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <sched.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnmkit.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

static int home_fd = -1;

static int get_string(napi_env env, napi_value v, char *buf, size_t len) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok || n == 0 || n >= len - 1) {
    napi_throw_type_error(env, NULL, "expected a non-empty path string");
    return -1;
  }
  return 0;
}

static napi_value make_int(napi_env env, int64_t x) {
  napi_value v;
  napi_create_int64(env, x, &v);
  return v;
}

/* Returns to the home namespace; aborts if that is impossible, since every later step
 * of the process would otherwise act on the wrong namespace. */
static void restore_home(void) {
  if (setns(home_fd, CLONE_NEWNET) != 0) {
    perror("cnmkit_native: cannot return to the home network namespace");
    abort();
  }
}

/* Moves the calling thread into the namespace at path; throws (and returns -1) when it cannot.
 * O_NONBLOCK: a FIFO put where a namespace was expected must fail setns, not block the thread. */
static int enter_netns(napi_env env, const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { cnmkit_throw_errno(env, errno, "open", path); return -1; }
  if (setns(fd, CLONE_NEWNET) != 0) {
    int err = errno;
    close(fd);
    cnmkit_throw_errno(env, err, "setns", path);
    return -1;
  }
  close(fd);
  return 0;
}

/* enter(path, fn): setns into the namespace at path, call fn(), return home, whatever fn did. */
static napi_value run_in(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result = NULL, global;
  char path[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) != 0) return NULL;
  if (enter_netns(env, path) != 0) return NULL;
  napi_get_global(env, &global);
  napi_call_function(env, global, argv[1], 0, NULL, &result);
  restore_home();
  return result;
}

/* The inode of the calling thread's network namespace (tests use it to prove the return home). */
static napi_value current_netns(napi_env env, napi_callback_info info) {
  (void)info;
  struct stat st;
  if (stat("/proc/thread-self/ns/net", &st) != 0) {
    cnmkit_throw_errno(env, errno, "stat", "/proc/thread-self/ns/net");
    return NULL;
  }
  return make_int(env, (int64_t)st.st_ino);
}

/* Makes dir a shared mount point, as `ip netns add` does, so bind mounts under it propagate. */
static int ensure_shared_dir(napi_env env, const char *dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) { cnmkit_throw_errno(env, errno, "mkdir", dir); return -1; }
  if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0) return 0;
  if (errno != EINVAL) { cnmkit_throw_errno(env, errno, "mount", dir); return -1; }
  if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) != 0) { cnmkit_throw_errno(env, errno, "mount", dir); return -1; }
  if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) != 0) { cnmkit_throw_errno(env, errno, "mount", dir); return -1; }
  return 0;
}

/* createNamed(dir, name): a new network namespace bind-mounted at dir/name (ip netns add). */
static napi_value create_named(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char dir[2048], name[256], path[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || get_string(env, argv[0], dir, sizeof dir) != 0 ||
      get_string(env, argv[1], name, sizeof name) != 0) return NULL;
  if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "namespace name must not contain '/'");
    return NULL;
  }
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (ensure_shared_dir(env, dir) != 0) return NULL;
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) { cnmkit_throw_errno(env, errno, "open", path); return NULL; }
  close(fd);
  if (unshare(CLONE_NEWNET) != 0) {
    int err = errno;
    unlink(path);
    cnmkit_throw_errno(env, err, "unshare", path);
    return NULL;
  }
  int rc = mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL);
  int err = errno;
  restore_home();
  if (rc != 0) {
    unlink(path);
    cnmkit_throw_errno(env, err, "mount", path);
    return NULL;
  }
  napi_value out;
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &out);
  return out;
}

/* deleteNamed(path): unmount and remove a named namespace (ip netns del); false if it was absent. */
static napi_value delete_named(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  char path[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || get_string(env, argv[0], path, sizeof path) != 0) return NULL;
  if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    cnmkit_throw_errno(env, errno, "umount2", path);
    return NULL;
  }
  if (unlink(path) != 0) {
    if (errno == ENOENT) { napi_get_boolean(env, false, &out); return out; }
    cnmkit_throw_errno(env, errno, "unlink", path);
    return NULL;
  }
  napi_get_boolean(env, true, &out);
  return out;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_value_int32(env, argv[0], &fd);
  if (close(fd) != 0) cnmkit_throw_errno(env, errno, "close", NULL);
  return NULL;
}

static int get_opt(napi_env env, napi_value obj, const char *key, int32_t *out) {
  bool has = false;
  napi_value v;
  napi_valuetype t;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return 0;
  napi_get_named_property(env, obj, key, &v);
  napi_typeof(env, v, &t);
  if (t == napi_boolean) { bool b; napi_get_value_bool(env, v, &b); *out = b; return 1; }
  if (t == napi_number) { napi_get_value_int32(env, v, out); return 1; }
  return 0;
}

static int apply_opts(napi_env env, int fd, napi_value opts) {
  static const struct { const char *key; int level; int name; } table[] = {
    { "noEnobufs", SOL_NETLINK, NETLINK_NO_ENOBUFS },
    { "extAck", SOL_NETLINK, NETLINK_EXT_ACK },
    { "strictCheck", SOL_NETLINK, NETLINK_GET_STRICT_CHK },
    { "receiveBuffer", SOL_SOCKET, SO_RCVBUFFORCE },
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    int32_t val;
    if (!get_opt(env, opts, table[i].key, &val)) continue;
    if (setsockopt(fd, table[i].level, table[i].name, &val, sizeof val) != 0) {
      cnmkit_throw_errno(env, errno, "setsockopt", table[i].key);
      return -1;
    }
  }
  return 0;
}

/* netlinkSocketIn(path, protocol[, options]): a netlink socket fd created inside the namespace at
 * path, with the options of setNetlinkOptions set on it. */
static napi_value netlink_socket_in(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[4096];
  int32_t proto = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) != 0) return NULL;
  napi_get_value_int32(env, argv[1], &proto);
  if (enter_netns(env, path) != 0) return NULL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  int err = errno;
  restore_home();
  if (fd < 0) { cnmkit_throw_errno(env, err, "socket", path); return NULL; }
  if (argc >= 3 && apply_opts(env, fd, argv[2]) != 0) {
    close(fd);
    return NULL;
  }
  return make_int(env, fd);
}

/* setNetlinkOptions(port, opts): finds this process's netlink socket bound to port (the
 * `netlink` package does not expose its fd) and sets NETLINK_NO_ENOBUFS, NETLINK_EXT_ACK,
 * NETLINK_GET_STRICT_CHK and SO_RCVBUFFORCE on it. Returns the fd, or throws ENOENT. */
static napi_value set_netlink_options(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t port = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) { napi_throw_type_error(env, NULL, "expected (port, options)"); return NULL; }
  napi_get_value_uint32(env, argv[0], &port);
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) { cnmkit_throw_errno(env, errno, "opendir", "/proc/self/fd"); return NULL; }
  struct dirent *ent;
  int found = -1;
  while ((ent = readdir(d)) != NULL) {
    int fd = atoi(ent->d_name);
    if (ent->d_name[0] == '.' || fd == dirfd(d)) continue;
    struct sockaddr_nl sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) continue;
    if (sa.nl_family == AF_NETLINK && sa.nl_pid == port) { found = fd; break; }
  }
  closedir(d);
  if (found < 0) { cnmkit_throw_errno(env, ENOENT, "getsockname", "netlink port"); return NULL; }
  if (apply_opts(env, found, argv[1]) != 0) return NULL;
  return make_int(env, found);
}

bool cnmkit_netns_init(napi_env env, napi_value exports) {
  home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_fd < 0) { cnmkit_throw_errno(env, errno, "open", "/proc/thread-self/ns/net"); return false; }
  napi_property_descriptor props[] = {
    { "runIn", NULL, run_in, NULL, NULL, NULL, napi_default, NULL },
    { "currentNetns", NULL, current_netns, NULL, NULL, NULL, napi_default, NULL },
    { "createNamed", NULL, create_named, NULL, NULL, NULL, napi_default, NULL },
    { "deleteNamed", NULL, delete_named, NULL, NULL, NULL, napi_default, NULL },
    { "netlinkSocketIn", NULL, netlink_socket_in, NULL, NULL, NULL, napi_default, NULL },
    { "closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL },
    { "setNetlinkOptions", NULL, set_netlink_options, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return true;
}
