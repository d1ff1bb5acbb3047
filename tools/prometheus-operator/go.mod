// Pins the Prometheus Operator whose generated CRDs (ServiceMonitor, PodMonitor,
// PrometheusRule) validate the chart's monitors and rules on the local cluster. Only the
// module's files are used (crds.sh copies them into the cache); nothing is built or vendored.
module switchboard.dev/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
