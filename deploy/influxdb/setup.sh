#!/usr/bin/env bash
# InfluxDB 1.x set-up for LBVM: a user for LBVM with rights on its database. The database, the raw
# retention policy and the 5-minute continuous query are created by LBVM itself on first write.
# Usage: INFLUX_ADMIN_PASSWORD=... LBVM_INFLUX_PASSWORD=... deploy/influxdb/setup.sh [http://host:8086] [database]
# With auth-enabled = true in /etc/influxdb/influxdb.conf ([http] section); the admin user must exist
# (InfluxDB lets the first admin be created before auth is switched on).
set -euo pipefail
url=${1:-http://127.0.0.1:8086}
db=${2:-lbvm}
: "${INFLUX_ADMIN_PASSWORD:?set INFLUX_ADMIN_PASSWORD (the InfluxDB admin password) in the environment}"
: "${LBVM_INFLUX_PASSWORD:?set LBVM_INFLUX_PASSWORD (the password to give the lbvm user) in the environment}"
admin=${INFLUX_ADMIN_USER:-admin}
q() {
  curl -fsS -XPOST "$url/query" -u "$admin:$INFLUX_ADMIN_PASSWORD" --data-urlencode "q=$1" >/dev/null
}
q "CREATE DATABASE \"$db\""
q "CREATE USER \"lbvm\" WITH PASSWORD '$LBVM_INFLUX_PASSWORD'" || q "SET PASSWORD FOR \"lbvm\" = '$LBVM_INFLUX_PASSWORD'"
q "GRANT ALL ON \"$db\" TO \"lbvm\""
echo "InfluxDB ready: set LBVM_STORE_URL=influx://lbvm:<password>@${url#*://}/$db for collectors, monitor and lbm"
