"""The Kubernetes API as the operator uses it: its one client, raw requests, generic object
writes, Events, and reading the bodies watches deliver."""
