#!/bin/sh
# Start Prometheus with the project's config (dashboards/prometheus/prometheus.yml) and rules (alerts.yml), on
# 127.0.0.1:$PROMETHEUS_PORT, scraping the Locust master's exporter at 127.0.0.1:$CHAOS_METRICS_PORT.
# The config names the default exporter address (127.0.0.1:9646); a copy with the configured port is what runs,
# because Prometheus does not read environment variables in its config. Extra arguments go to prometheus.
set -eu
kit=/etc/chaos-events/prometheus
port="${PROMETHEUS_PORT:-9090}"
target="127.0.0.1:${CHAOS_METRICS_PORT:-9646}"
config="$kit/running.yml"  # beside alerts.yml, which the config names relative to itself
grep -q '"127.0.0.1:9646"' "$kit/prometheus.yml" || { echo "chaos-prometheus: $kit/prometheus.yml no longer names 127.0.0.1:9646" >&2; exit 2; }
sed -e "s|\"127.0.0.1:9646\"|\"$target\"|" "$kit/prometheus.yml" > "$config"
echo "chaos-prometheus: listening on 127.0.0.1:$port, scraping $target, rules $kit/alerts.yml"
exec prometheus --config.file="$config" --web.listen-address="127.0.0.1:$port" \
    --storage.tsdb.path=/prometheus --storage.tsdb.retention.time=2d "$@"
