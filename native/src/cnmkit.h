/*
 * What the addon's C files share: errors shaped like Node's own, and each file's registration.
 * Limits: Linux only (strerrorname_np needs glibc 2.32).
 */
#ifndef CNMKIT_NATIVE_H
#define CNMKIT_NATIVE_H

#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>

/* A new Error like Node's own: message "CODE: text syscall 'path'", errno (negative), code,
 * syscall and, when path is not NULL, path. */
napi_value cnmkit_errno_error(napi_env env, int err, const char *syscall, const char *path);

/* Throws cnmkit_errno_error(env, err, syscall, path). */
void cnmkit_throw_errno(napi_env env, int err, const char *syscall, const char *path);

/* pthread_create with every signal blocked in the new thread (signals belong to Node's main
 * thread); returns pthread_create's error. */
int cnmkit_thread_start(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* The native object wrapped in `this` of a method call, with the call's arguments (argc, argv may
 * be NULL); throws ERR_INVALID_THIS naming `what` and returns NULL when there is none. */
void *cnmkit_unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *what);

/* Whether argument i of a call (argc of them in argv) is a function. */
bool cnmkit_function_arg(napi_env env, size_t argc, const napi_value *argv, size_t i);

/* splice.c: adds spliceRelay to exports. */
void cnmkit_splice_init(napi_env env, napi_value exports);

/* acceptor.c: adds tcpAcceptor to exports. */
void cnmkit_acceptor_init(napi_env env, napi_value exports);

/* icmp.c: adds icmpSocket and icmpSweep to exports. */
void cnmkit_icmp_init(napi_env env, napi_value exports);

/* rtnl.c: adds netlinkRequest, netlinkRequestAsync and netlinkBind to exports. */
void cnmkit_rtnl_init(napi_env env, napi_value exports);

#endif
