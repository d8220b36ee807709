/*
 * proxyBudget(limit): the counters one userland proxy shares among its native parts — live TCP
 * connections and UDP flows held against one limit, bytes each way, limit hits by reason. Any
 * thread updates them with atomics; JS reads them with stats() and changes nothing else.
 * Limits: the limit can be passed for a moment by concurrent acquires, never kept passed.
 */
#include <errno.h>
#include <stdlib.h>

#include "cnmkit.h"

struct cnmkit_budget {
  atomic_long live;    /* connections + flows, held against limit */
  atomic_long tcp, udp;
  long limit;
  atomic_ullong to_container, from_container;
  atomic_ullong hits[CNMKIT_HIT_COUNT];
  atomic_int refs;
};

static const napi_type_tag budget_tag = { 0x636e6d6b69746275ULL, 0x646765742d763031ULL };

static const char *const hit_names[CNMKIT_HIT_COUNT] = {
  [CNMKIT_HIT_MAX_CONNECTIONS] = "max-connections",
  [CNMKIT_HIT_PER_PORT] = "max-connections-per-port",
  [CNMKIT_HIT_IDLE] = "idle-timeout",
};

bool cnmkit_budget_acquire(cnmkit_budget_t *b, bool udp) {
  if (atomic_fetch_add(&b->live, 1) >= b->limit) {
    atomic_fetch_sub(&b->live, 1);
    cnmkit_budget_hit(b, CNMKIT_HIT_MAX_CONNECTIONS);
    return false;
  }
  atomic_fetch_add(udp ? &b->udp : &b->tcp, 1);
  return true;
}

void cnmkit_budget_release(cnmkit_budget_t *b, bool udp) {
  atomic_fetch_sub(udp ? &b->udp : &b->tcp, 1);
  atomic_fetch_sub(&b->live, 1);
}

void cnmkit_budget_hit(cnmkit_budget_t *b, cnmkit_hit_t reason) { atomic_fetch_add_explicit(&b->hits[reason], 1, memory_order_relaxed); }

void cnmkit_budget_bytes(cnmkit_budget_t *b, bool to_container, uint64_t n) {
  atomic_fetch_add_explicit(to_container ? &b->to_container : &b->from_container, n, memory_order_relaxed);
}

cnmkit_budget_t *cnmkit_budget_ref(cnmkit_budget_t *b) {
  if (b != NULL) atomic_fetch_add(&b->refs, 1);
  return b;
}

void cnmkit_budget_unref(cnmkit_budget_t *b) {
  if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

const char *cnmkit_hit_name(cnmkit_hit_t reason) { return hit_names[reason]; }

cnmkit_budget_t *cnmkit_budget_arg(napi_env env, napi_value v) {
  bool tagged = false;
  void *b = NULL;
  napi_valuetype type = napi_undefined;
  napi_typeof(env, v, &type);
  if (type == napi_object && napi_check_object_type_tag(env, v, &budget_tag, &tagged) == napi_ok && tagged && napi_unwrap(env, v, &b) == napi_ok)
    return b;
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a proxyBudget");
  return NULL;
}

static void set_number(napi_env env, napi_value obj, const char *key, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  napi_set_named_property(env, obj, key, v);
}

/* budget.stats(): { live, limit, tcp, udp, toContainer, fromContainer, hits: { reason: n } }. */
static napi_value budget_stats(napi_env env, napi_callback_info info) {
  cnmkit_budget_t *b = cnmkit_unwrap_this(env, info, NULL, NULL, "a proxyBudget");
  if (b == NULL) return NULL;
  napi_value out, hits;
  napi_create_object(env, &out);
  napi_create_object(env, &hits);
  set_number(env, out, "live", (double)atomic_load(&b->live));
  set_number(env, out, "limit", (double)b->limit);
  set_number(env, out, "tcp", (double)atomic_load(&b->tcp));
  set_number(env, out, "udp", (double)atomic_load(&b->udp));
  set_number(env, out, "toContainer", (double)atomic_load(&b->to_container));
  set_number(env, out, "fromContainer", (double)atomic_load(&b->from_container));
  for (int i = 0; i < CNMKIT_HIT_COUNT; i++) set_number(env, hits, hit_names[i], (double)atomic_load(&b->hits[i]));
  napi_set_named_property(env, out, "hits", hits);
  return out;
}

/* budget.releaseTcp(): a TCP connection the acceptor counted has ended (JS owns their lifetime). */
static napi_value budget_release_tcp(napi_env env, napi_callback_info info) {
  cnmkit_budget_t *b = cnmkit_unwrap_this(env, info, NULL, NULL, "a proxyBudget");
  if (b != NULL) cnmkit_budget_release(b, false);
  return NULL;
}

static void budget_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  cnmkit_budget_unref(data);
}

/* proxyBudget(limit): a new budget with nothing live. */
static napi_value proxy_budget(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], handle, fn;
  int64_t limit = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int64(env, argv[0], &limit) != napi_ok || limit < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (limit), a non-negative integer");
    return NULL;
  }
  cnmkit_budget_t *b = calloc(1, sizeof *b);
  if (b == NULL) { cnmkit_throw_errno(env, ENOMEM, "calloc", NULL); return NULL; }
  b->limit = (long)limit;
  atomic_init(&b->refs, 1);
  napi_create_object(env, &handle);
  napi_create_function(env, "stats", NAPI_AUTO_LENGTH, budget_stats, NULL, &fn);
  napi_set_named_property(env, handle, "stats", fn);
  napi_create_function(env, "releaseTcp", NAPI_AUTO_LENGTH, budget_release_tcp, NULL, &fn);
  napi_set_named_property(env, handle, "releaseTcp", fn);
  if (napi_type_tag_object(env, handle, &budget_tag) != napi_ok || napi_wrap(env, handle, b, budget_finalize, NULL, NULL) != napi_ok) {
    free(b);
    napi_throw_error(env, NULL, "proxyBudget: cannot wrap the counters");
    return NULL;
  }
  return handle;
}

void cnmkit_budget_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "proxyBudget", NAPI_AUTO_LENGTH, proxy_budget, NULL, &fn);
  napi_set_named_property(env, exports, "proxyBudget", fn);
}
