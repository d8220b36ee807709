/*
 * What every C file of the addon uses to speak to Node: errors shaped like Node's own, method
 * calls on wrapped objects, argument checks, and threads that leave signals to Node's main thread.
 * Limits: Linux only (strerrorname_np needs glibc 2.32).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cnmkit.h"

/* An Error shaped like Node's own: message, errno, code, syscall, path. */
napi_value cnmkit_errno_error(napi_env env, int err, const char *syscall, const char *path) {
  char msg[512];
  const char *name = strerrorname_np(err);
  if (name == NULL) name = "EUNKNOWN";
  if (path != NULL)
    snprintf(msg, sizeof msg, "%s: %s %s '%s'", name, strerror(err), syscall, path);
  else
    snprintf(msg, sizeof msg, "%s: %s %s", name, strerror(err), syscall);
  napi_value m, e, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "code", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  if (path != NULL) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "path", v);
  }
  return e;
}

int cnmkit_thread_start(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(tid, attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return err;
}

void *cnmkit_unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *what) {
  napi_value self;
  void *obj = NULL;
  napi_get_cb_info(env, info, argc, argv, &self, NULL);
  if (napi_unwrap(env, self, &obj) == napi_ok && obj != NULL) return obj;
  char msg[128];
  snprintf(msg, sizeof msg, "expected %s as this", what);
  napi_throw_type_error(env, "ERR_INVALID_THIS", msg);
  return NULL;
}

bool cnmkit_function_arg(napi_env env, size_t argc, const napi_value *argv, size_t i) {
  napi_valuetype type = napi_undefined;
  if (argc > i) napi_typeof(env, argv[i], &type);
  return type == napi_function;
}

void cnmkit_throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  napi_throw(env, cnmkit_errno_error(env, err, syscall, path));
}
