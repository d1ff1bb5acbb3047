"""Pure decision logic: plain data in, plain data out; no Kubernetes, network or clock I/O."""
