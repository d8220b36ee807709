{
  "targets": [
    {
      "target_name": "cnmkit_native",
      "sources": ["src/netns.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
