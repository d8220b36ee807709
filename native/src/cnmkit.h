/*
 * What the addon's C files share: errors shaped like Node's own, and each file's registration.
 * Limits: Linux only (strerrorname_np needs glibc 2.32).
 */
#ifndef CNMKIT_NATIVE_H
#define CNMKIT_NATIVE_H

#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

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

/* budget.c: one userland proxy's live connections against its limit, bytes, and limit hits. */
typedef struct cnmkit_budget cnmkit_budget_t;
typedef enum { CNMKIT_HIT_MAX_CONNECTIONS, CNMKIT_HIT_PER_PORT, CNMKIT_HIT_IDLE, CNMKIT_HIT_COUNT } cnmkit_hit_t;

/* Takes one connection (or UDP flow) of the limit; false (a max-connections hit counted) when full. */
bool cnmkit_budget_acquire(cnmkit_budget_t *b, bool udp);
void cnmkit_budget_release(cnmkit_budget_t *b, bool udp);
void cnmkit_budget_hit(cnmkit_budget_t *b, cnmkit_hit_t reason);
void cnmkit_budget_bytes(cnmkit_budget_t *b, bool to_container, uint64_t n);
/* The budget's name of a hit reason, e.g. "max-connections-per-port". */
const char *cnmkit_hit_name(cnmkit_hit_t reason);
/* References keep a budget alive past its JS object; both accept NULL. */
cnmkit_budget_t *cnmkit_budget_ref(cnmkit_budget_t *b);
void cnmkit_budget_unref(cnmkit_budget_t *b);
/* The budget wrapped in v (not referenced); throws ERR_INVALID_ARG_TYPE and returns NULL otherwise. */
cnmkit_budget_t *cnmkit_budget_arg(napi_env env, napi_value v);
void cnmkit_budget_init(napi_env env, napi_value exports);

/* sockets.c: what the proxy's native parts share about sockets. fds at or above CNMKIT_FD_LIMIT
 * are refused (ids pack a serial and an fd: serial * 2^24 + fd, exact in a JS number). */
#define CNMKIT_FD_BITS 24
#define CNMKIT_FD_LIMIT (1 << CNMKIT_FD_BITS)
/* Parses an IPv4 or IPv6 address argument (port 0); throws and returns -1 when it is none. */
int cnmkit_address_arg(napi_env env, napi_value v, struct sockaddr_storage *sa, socklen_t *len);
void cnmkit_set_port(struct sockaddr_storage *sa, int port);
/* A non-blocking socket of type bound to base's address and port (SO_REUSEADDR for streams),
 * or -errno with *syscall set. */
int cnmkit_bind_port(const struct sockaddr_storage *base, socklen_t len, int port, int type, bool v6only, const char **syscall);
/* Throws an errno error carrying the port that failed: err.port. */
void cnmkit_throw_port_error(napi_env env, int err, const char *syscall, int port);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t cnmkit_now_ms(void);
/* Closes a connected TCP socket with a reset (SO_LINGER 0): no FIN, no TIME_WAIT. */
void cnmkit_close_reset(int fd);
/* Grows the process's fd table once, to slots or the fd limit (fd is any open one). Tables shared
 * by threads grow with a synchronize_rcu() per doubling (milliseconds each): paid at start instead
 * of by the first publish of a large range. Best effort. */
void cnmkit_grow_fd_table(int fd, int slots);

/* netns.c: adds runIn, currentNetns, createNamed, deleteNamed, netlinkSocketIn, closeFd and
 * setNetlinkOptions to exports; false (an error thrown) when the home namespace cannot be opened. */
bool cnmkit_netns_init(napi_env env, napi_value exports);

/* splice.c: adds spliceRelay to exports. */
void cnmkit_splice_init(napi_env env, napi_value exports);

/* acceptor.c: adds tcpAcceptor to exports. */
void cnmkit_acceptor_init(napi_env env, napi_value exports);

/* icmp.c: adds icmpSocket and icmpSweep to exports. */
void cnmkit_icmp_init(napi_env env, napi_value exports);
/* udp.c: adds udpForwarder to exports. */
void cnmkit_udp_init(napi_env env, napi_value exports);

/* rtnl.c: adds netlinkRequest, netlinkRequestAsync and netlinkBind to exports. */
void cnmkit_rtnl_init(napi_env env, napi_value exports);

#endif
