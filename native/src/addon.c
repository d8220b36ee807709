/*
 * The addon's entry point: each C file adds its functions to the module's exports.
 * Limits: loaded once per process (the home namespace is taken at load).
 */
#include "cnmkit.h"

static napi_value init(napi_env env, napi_value exports) {
  if (!cnmkit_netns_init(env, exports)) return NULL;
  cnmkit_splice_init(env, exports);
  cnmkit_acceptor_init(env, exports);
  cnmkit_udp_init(env, exports);
  cnmkit_budget_init(env, exports);
  cnmkit_rtnl_init(env, exports);
  cnmkit_icmp_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
