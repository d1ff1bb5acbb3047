"""The operator's I/O edge: kopf handlers and Kubernetes client glue around the pure logic."""
