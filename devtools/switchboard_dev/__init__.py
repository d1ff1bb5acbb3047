"""Developer tooling: Switchboard on the local cluster, for the demo and the test suite."""
