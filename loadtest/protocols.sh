#!/usr/bin/env bash
# protocols.sh: the overhead scenario over HTTP/2 and TLS, in one run, driven by h2load.
#
# Clients -> proxy over
#   h1      HTTP/1.1, plain (the existing scenario's protocol, as a reference)
#   h1-tls  HTTP/1.1 over TLS (ALPN http/1.1)
#   h2c     HTTP/2 with prior knowledge, plain
#   h2-tls  HTTP/2 over TLS (ALPN h2)
# proxy -> mockllm over HTTP/1.1 keep-alive (both proxies). Paths: direct to mockllm (where
# mockllm speaks the protocol: not h1-tls, its TLS port is HTTP/2 only), infergate (one
# shard) and nginx (worker_processes 1, master_process off, upstream keep-alive,
# access_log off), both serving the same certificate from a private CA made here.
#
# Pinning as in `scenario`: mockllm and h2load on LOAD_CPU, the proxies on PROXY_CPU.
# Only 127.0.0.1. Every run is bounded (h2load -D under `timeout`); the script kills only
# the processes it started (by pid) and removes its temp dir, also on error or Ctrl-C.
#
# Usage: loadtest/protocols.sh            (from the repository root, after
#                                          `cargo build --release --workspace`)
# Environment (defaults):
#   BIN=target/release      where infergate and mockllm are
#   DURATION=5              seconds per measured h2load run
#   WARMUP=1                seconds of unmeasured h2load run before each measured one
#   PROTOCOLS="h1 h1-tls h2c h2-tls"
#   LOADS="c1 c16"          c1: 1 connection, 1 request at a time (latency without
#                           queueing); c16: 16 requests in flight (h1: 16 connections;
#                           h2: 4 connections x 4 streams)
#   BODY_BYTES=1024         chat request body size (the loadgen's body)
#   LOAD_CPU=0 PROXY_CPU=1
#   KEEP=DIR                keep configs, h2load outputs and per-request logs in DIR
#
# Output: one table row per protocol, load and path (req/s; latency percentiles computed
# from h2load's per-request log, which h2load itself reports only as min/max/mean/sd;
# h2load's mean; the proxy's CPU µs per 2xx response from /proc/PID/stat utime+stime over
# the measured run), then infergate against nginx and against direct for each pair.

set -euo pipefail

BIN=${BIN:-target/release}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
PROTOCOLS=${PROTOCOLS:-"h1 h1-tls h2c h2-tls"}
LOADS=${LOADS:-"c1 c16"}
BODY_BYTES=${BODY_BYTES:-1024}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
KEEP=${KEEP:-}

say() { echo "protocols: $*" >&2; }
die() { say "$*"; exit 1; }

# --- tools -------------------------------------------------------------------------
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
for tool in openssl curl python3 taskset timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing ${need_apt[*]} with apt-get"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${need_apt[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for bin in infergate mockllm; do
    [ -x "$BIN/$bin" ] || die "$BIN/$bin not found: cargo build --release --workspace"
done

# --- processes we start, and cleanup ----------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/infergate-protocols.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp -r "$TMP"/. "$KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPU PROG ARGS...: pinned, stdout to $TMP/NAME.out, stderr to $TMP/NAME.err.
start() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    eval "PID_${name//-/_}=$!"
}

# wait_line NAME PREFIX: the rest of the first stdout line of NAME starting with PREFIX.
wait_line() {
    local name=$1 prefix=$2 line
    for _ in $(seq 1 150); do
        line=$(grep -m1 "^$prefix" "$TMP/$name.out" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "${line#"$prefix"}"
            return 0
        fi
        sleep 0.1
    done
    say "$name did not print '$prefix'; its stderr:"
    tail -c 2000 "$TMP/$name.err" >&2 || true
    return 1
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listening on 127.0.0.1:$1"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_of() { local u=${1##*:}; echo "${u%%/*}"; }

# utime+stime of PID in µs.
cpu_us() {
    local stat rest
    stat=$(cat "/proc/$1/stat")
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $(((${12} + ${13}) * 1000000 / CLK_TCK))
}
CLK_TCK=$(getconf CLK_TCK)

# --- certificates: a private CA and a server certificate for 127.0.0.1 --------------
CERTS=$TMP/certs
mkdir -p "$CERTS"
(
    cd "$CERTS"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=infergate bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        -out ca.pem 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null
    openssl req -new -key key.pem -subj "/CN=localhost" -out server.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -sha256 -extfile ext.cnf -out cert.pem 2>/dev/null
) || die "openssl failed"
say "private CA and server certificate (P-256) in $CERTS"

# --- the request body: the same as loadgen's chat_body(gpt-4o-mini, false, BODY_BYTES) --
python3 - "$BODY_BYTES" >"$TMP/body.json" <<'EOF'
import itertools, json, sys
n = int(sys.argv[1])
prompt = "Summarize the following text in one sentence."
def render(p):
    return json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": p}]}, separators=(",", ":"))
body = render(prompt)
if len(body) < n:
    pad = "".join(itertools.islice(itertools.cycle(" lorem ipsum dolor sit amet"), n - len(body)))
    body = render(prompt + pad)
sys.stdout.write(body)
EOF

# --- mockllm: plain (HTTP/1.1 and h2c) and TLS (HTTP/2 only) -----------------------
start mock "$LOAD_CPU" "$BIN/mockllm" --listen 127.0.0.1:0 --threads 1 --tokens 16
MOCK_URL=$(wait_line mock "mockllm listening on ")
MOCK_PORT=$(port_of "$MOCK_URL")
start mock-tls "$LOAD_CPU" "$BIN/mockllm" --listen 127.0.0.1:0 --threads 1 --tokens 16 \
    --tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem"
MOCK_TLS_URL=$(wait_line mock-tls "mockllm listening on ")
MOCK_TLS_PORT=$(port_of "$MOCK_TLS_URL")
say "mockllm at $MOCK_URL and $MOCK_TLS_URL (cpu $LOAD_CPU)"

# --- infergate: one plain (HTTP/1.1 + h2c), one TLS (ALPN h2 + http/1.1) ------------
gateway_toml() { # LISTEN_PORT ADMIN_PORT LOG TLS_LINE
    cat <<EOF
[server]
listen = "127.0.0.1:$1"
shards = 1
http2 = true
$4

[admin]
listen = "127.0.0.1:$2"

[log]
path = "$3"

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"

[models."gpt-4o-mini"]
targets = [ { provider = "mock", model = "gpt-4o-mini" } ]
EOF
}
IG_PORT=$(free_port)
IG_TLS_PORT=$(free_port)
gateway_toml "$IG_PORT" "$(free_port)" "$TMP/requests.jsonl" "" >"$TMP/infergate.toml"
gateway_toml "$IG_TLS_PORT" "$(free_port)" "$TMP/requests-tls.jsonl" \
    "tls = { cert = \"$CERTS/cert.pem\", key = \"$CERTS/key.pem\" }" >"$TMP/infergate-tls.toml"
start ig "$PROXY_CPU" "$BIN/infergate" --config "$TMP/infergate.toml"
wait_line ig "infergate listening on " >/dev/null
start ig-tls "$PROXY_CPU" "$BIN/infergate" --config "$TMP/infergate-tls.toml"
wait_line ig-tls "infergate listening on " >/dev/null
say "infergate at 127.0.0.1:$IG_PORT (plain) and :$IG_TLS_PORT (TLS) (cpu $PROXY_CPU)"

# --- nginx: one process, three servers (HTTP/1.1, h2c, TLS with ALPN h2 + http/1.1) ----
NG_PORT=$(free_port)
NG_H2C_PORT=$(free_port)
NG_TLS_PORT=$(free_port)
mkdir -p "$TMP/nginx"
location='
        client_body_buffer_size 1m;
        client_max_body_size 32m;
        location / {
            proxy_pass http://mockllm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }'
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    upstream mockllm {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NG_PORT;$location
    }
    server {
        listen 127.0.0.1:$NG_H2C_PORT http2;$location
    }
    server {
        listen 127.0.0.1:$NG_TLS_PORT ssl http2;
        ssl_certificate $CERTS/cert.pem;
        ssl_certificate_key $CERTS/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;$location
    }
}
EOF
start nginx "$PROXY_CPU" "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf"
for p in "$NG_PORT" "$NG_H2C_PORT" "$NG_TLS_PORT"; do wait_port "$p"; done
say "nginx at :$NG_PORT (h1), :$NG_H2C_PORT (h2c), :$NG_TLS_PORT (TLS) (cpu $PROXY_CPU)"

# url_of PROTOCOL PATH: the URL, or nothing when the path does not speak the protocol.
url_of() {
    local path=/v1/chat/completions
    case "$1:$2" in
        h1:direct | h2c:direct) echo "http://127.0.0.1:$MOCK_PORT$path" ;;
        h2-tls:direct) echo "https://127.0.0.1:$MOCK_TLS_PORT$path" ;;
        h1-tls:direct) ;;
        h1:infergate | h2c:infergate) echo "http://127.0.0.1:$IG_PORT$path" ;;
        h1-tls:infergate | h2-tls:infergate) echo "https://127.0.0.1:$IG_TLS_PORT$path" ;;
        h1:nginx) echo "http://127.0.0.1:$NG_PORT$path" ;;
        h2c:nginx) echo "http://127.0.0.1:$NG_H2C_PORT$path" ;;
        h1-tls:nginx | h2-tls:nginx) echo "https://127.0.0.1:$NG_TLS_PORT$path" ;;
    esac
}
pid_of() {
    case "$1:$2" in
        *:direct) echo "" ;;
        h1-tls:infergate | h2-tls:infergate) echo "$PID_ig_tls" ;;
        *:infergate) echo "$PID_ig" ;;
        *:nginx) echo "$PID_nginx" ;;
    esac
}

# --- check every path answers 200 in the protocol it is meant to, with the CA verified --
for proto in $PROTOCOLS; do
    for path in direct infergate nginx; do
        url=$(url_of "$proto" "$path")
        [ -n "$url" ] || continue
        case $proto in
            h1 | h1-tls) flag=--http1.1 ;;
            h2c) flag=--http2-prior-knowledge ;;
            h2-tls) flag=--http2 ;;
        esac
        got=$(curl -sS -o /dev/null -w '%{http_code} HTTP/%{http_version}' --max-time 5 \
            --cacert "$CERTS/ca.pem" "$flag" -H 'content-type: application/json' \
            --data-binary "@$TMP/body.json" "$url") || die "curl $proto $path failed"
        say "check $proto $path: $got"
        case "$got" in 200*) ;; *) die "$proto $path answered $got" ;; esac
    done
done

# --- measuring ------------------------------------------------------------------------
h2load_args() { # PROTOCOL LOAD
    local proto=$1 load=$2 args=(-t 1)
    case $proto in h1 | h1-tls) args+=(--h1) ;; esac
    case "$load:$proto" in
        c1:*) args+=(-c 1 -m 1) ;;
        c16:h1 | c16:h1-tls) args+=(-c 16 -m 1) ;;
        c16:*) args+=(-c 4 -m 4) ;;
        *) die "unknown load $load" ;;
    esac
    echo "${args[@]}"
}

# Percentiles (nearest rank) of column 3 (µs to the end of the response) of 2xx lines.
percentiles() {
    awk -F'\t' '$2 >= 200 && $2 < 300 { print $3 }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "- - - - -"; exit }
            split("0.50 0.90 0.99 0.999", q, " ")
            out = ""
            for (i = 1; i <= 4; i++) {
                r = int(q[i] * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
                out = out v[r] " "
            }
            print out v[NR]
        }'
}

RESULTS=$TMP/results.tsv
: >"$RESULTS"
LIMIT=$((DURATION + WARMUP + 30))
say "per run: ${WARMUP}s warm-up + ${DURATION}s measured; h2load and mockllm on cpu $LOAD_CPU"
for proto in $PROTOCOLS; do
    for load in $LOADS; do
        for path in direct infergate nginx; do
            url=$(url_of "$proto" "$path")
            [ -n "$url" ] || continue
            read -r -a args <<<"$(h2load_args "$proto" "$load")"
            common=("${args[@]}" -H 'content-type: application/json' -d "$TMP/body.json")
            tag="$proto-$load-$path"
            timeout "$LIMIT" taskset -c "$LOAD_CPU" h2load "${common[@]}" -D "$WARMUP" "$url" \
                >"$TMP/$tag.warmup.txt" 2>&1 || say "warm-up of $tag: h2load exit $?"
            pid=$(pid_of "$proto" "$path")
            before=0
            [ -z "$pid" ] || before=$(cpu_us "$pid")
            timeout "$LIMIT" taskset -c "$LOAD_CPU" h2load "${common[@]}" -D "$DURATION" \
                --log-file "$TMP/$tag.log" "$url" >"$TMP/$tag.txt" 2>&1 ||
                say "$tag: h2load exit $?"
            after=0
            [ -z "$pid" ] || after=$(cpu_us "$pid")
            out=$TMP/$tag.txt
            rps=$(sed -n 's/^finished in [^,]*, \([0-9]*\)[0-9.]* req\/s.*/\1/p' "$out")
            ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
            failed=$(sed -n 's/^requests: .* \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1\/\2\/\3/p' "$out")
            mean=$(awk '/^time for request:/ { print $6 " ± " $7 }' "$out")
            alpn=$(sed -n 's/^Application protocol: *//p' "$out")
            cipher=$(sed -n 's/^Cipher: *//p' "$out")
            read -r p50 p90 p99 p999 max <<<"$(percentiles "$TMP/$tag.log")"
            cpu=-
            if [ -n "$pid" ] && [ "${ok:-0}" -gt 0 ]; then
                cpu=$(awk -v d=$((after - before)) -v n="$ok" 'BEGIN { printf "%.1f", d / n }')
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proto" "$load" \
                "$path" "${rps:-0}" "${ok:-0}" "${failed:-?}" "${p50:--}" "${p90:--}" \
                "${p99:--}" "${p999:--}" "${max:--}" "${mean:--}" "$cpu" \
                "${alpn:-?}${cipher:+ $cipher}" >>"$RESULTS"
            say "$tag: ${rps:-?} req/s, p50 ${p50:-?} µs, p99 ${p99:-?} µs, cpu ${cpu} µs/req, failed/errored/timeout ${failed:-?}"
        done
    done
done

# --- report ---------------------------------------------------------------------------
echo "# protocols.sh: ${DURATION}s per run, ${BODY_BYTES} B non-streamed chat bodies; h2load+mockllm on cpu $LOAD_CPU, proxy on cpu $PROXY_CPU; $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| protocol | load | path | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | h2load mean ± sd | CPU µs/req | failed/errored/timeout | negotiated |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $7, $8, $9, $10, $11, $12, $13, $6, $14 }' "$RESULTS"
echo
echo "| protocol | load | infergate/nginx req/s | infergate/nginx CPU | p50 over direct: infergate / nginx µs | p99 over direct: infergate / nginx µs |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '
    { key = $1 "\t" $2; rps[key, $3] = $4; cpu[key, $3] = $13; p50[key, $3] = $7; p99[key, $3] = $9
      if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    function r(a, b) { return (b + 0 > 0 && a != "-") ? sprintf("%.2f", a / b) : "-" }
    function over(p, k, path) { return ((k, "direct") in p) ? sprintf("%+d", p[k, path] - p[k, "direct"]) : "-" }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; split(k, f, "\t")
            printf "| %s | %s | %s | %s | %s / %s | %s / %s |\n", f[1], f[2],
                r(rps[k, "infergate"], rps[k, "nginx"]), r(cpu[k, "infergate"], cpu[k, "nginx"]),
                over(p50, k, "infergate"), over(p50, k, "nginx"),
                over(p99, k, "infergate"), over(p99, k, "nginx")
        }
    }' "$RESULTS"
