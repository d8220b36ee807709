{
  "targets": [
    {
      "target_name": "cnmkit_native",
      "sources": ["src/netns.c", "src/splice.c", "src/acceptor.c", "src/rtnl.c", "src/icmp.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
