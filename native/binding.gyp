{
  "targets": [
    {
      "target_name": "cnmkit_native",
      "sources": ["src/addon.c", "src/napi.c", "src/netns.c", "src/splice.c", "src/relay.c", "src/acceptor.c", "src/acceptor-js.c", "src/udp.c", "src/udp-js.c", "src/budget.c", "src/sockets.c", "src/rtnl.c", "src/icmp.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
