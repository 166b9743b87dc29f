#!/usr/bin/env python3
"""Memory per open SSE stream and per idle keep-alive connection, measured on a running gateway.

Opens N client connections to the gateway (127.0.0.1 only), each either
  - `stream`: a streamed chat request whose answer stays open (the provider paces tokens
    slowly), held after its first event arrives, or
  - `idle`: one non-streamed request answered, then the connection kept open and idle,
and reads the gateway's RSS (/proc/PID/status VmRSS) before and after, once it is steady.
Bytes per connection = (RSS after - RSS before) / N. Everything is closed at the end; the
run is bounded by --timeout and stops by itself.

    stream_memory.py --url http://127.0.0.1:8080 --pid PID --mode stream --count 10000
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from urllib.parse import urlparse


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def request(host: str, model: str, stream: bool, tokens: int, itl_ms: int) -> bytes:
    body = json.dumps(
        {
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "hold this stream open " * 20}],
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-mock-tokens: {tokens}\r\nx-mock-itl-ms: {itl_ms}\r\n\r\n"
    ).encode()
    return head + body


async def open_one(host, port, payload, mode, ready, stop):
    """One connection: send, wait for the first event (stream) or the whole answer (idle),
    count it ready, then hold the connection until `stop`."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        if mode == "stream":
            await reader.readuntil(b"\n\n")  # the first event
        else:
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        ready.append(1)
        await stop.wait()
    finally:
        writer.close()


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the gateway, http://127.0.0.1:PORT")
    p.add_argument("--pid", type=int, required=True, help="the gateway's process id")
    p.add_argument("--mode", choices=["stream", "idle"], default="stream")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--itl-ms", type=int, default=20000, help="provider's delay between tokens (mockllm)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    u = urlparse(a.url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        print("only 127.0.0.1", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    payload = request(u.netloc, a.model, a.mode == "stream", 1000, a.itl_ms)
    before_rss, before_fds = rss_bytes(a.pid), fd_count(a.pid)
    ready, stop = [], asyncio.Event()
    started = time.monotonic()
    tasks = []
    for i in range(a.count):
        tasks.append(asyncio.create_task(open_one(u.hostname, u.port, payload, a.mode, ready, stop)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # don't overflow the listen backlog
    deadline = started + a.timeout
    while len(ready) < a.count and time.monotonic() < deadline:
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if failed:
            print(f"a connection failed: {failed[0].exception()!r}", file=sys.stderr)
            stop.set()
            return 1
        await asyncio.sleep(0.1)
    if len(ready) < a.count:
        print(f"only {len(ready)} of {a.count} ready within {a.timeout}s", file=sys.stderr)
        stop.set()
        return 1
    # Let the gateway settle (buffers grown by the first event, allocator caches).
    await asyncio.sleep(2.0)
    after_rss, after_fds = rss_bytes(a.pid), fd_count(a.pid)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = {
        "mode": a.mode,
        "count": a.count,
        "rss_before": before_rss,
        "rss_after": after_rss,
        "bytes_per_connection": (after_rss - before_rss) / a.count,
        "fds_per_connection": (after_fds - before_fds) / a.count,
        "seconds_to_open": round(time.monotonic() - started, 1),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(
            f"{a.mode}: {a.count} open, RSS {before_rss/2**20:.1f} -> {after_rss/2**20:.1f} MiB, "
            f"{result['bytes_per_connection']/1024:.1f} KiB and {result['fds_per_connection']:.2f} fds per connection"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
